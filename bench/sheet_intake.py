"""How long intake takes to read and validate a 10,000-row sheet, beside a bare read of the
same file by python-calamine in the same run (goal: at most 1.3x the bare read, under 2 s).

    .venv/bin/python -m bench.sheet_intake
"""

from __future__ import annotations

import io
import time
from datetime import date

import python_calamine

from devtools.demo import demo_sheet
from services.ingest import adapters, logic


def main() -> None:
    data = demo_sheet(1250, sample_date=date(2026, 11, 20))  # 8 results each: 10,000 rows
    started = time.perf_counter()
    workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    rows = workbook.get_sheet_by_index(0).to_python()
    bare = time.perf_counter() - started

    started = time.perf_counter()
    table = adapters.read_sheet(data, "bench.xlsx")
    read = time.perf_counter() - started
    outcome = logic.group_rows(
        table.header, table.rows, "GB", date(2026, 11, 25), row_numbers=table.row_numbers
    )
    total = time.perf_counter() - started
    assert len(rows) == 10_001 and outcome.rows_accepted == 10_000, outcome.rejected[:3]
    print(f"bare calamine read     {bare:6.3f} s")
    print(f"intake read (checked)  {read:6.3f} s  ({read / bare:.2f}x)")
    print(f"intake read + validate {total:6.3f} s  ({total / bare:.2f}x)")


if __name__ == "__main__":
    main()
