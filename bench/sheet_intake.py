"""How long intake takes to read and validate a 10,000-row sheet, beside a bare read of the
same file by python-calamine in the same run (goal: at most 1.3x the bare read, under 2 s),
and how the reader's memory grows from 10,000 to 100,000 rows.

    .venv/bin/python -m bench.sheet_intake [runs]

Each figure is the median of `runs` (default 7) rounds, the bare read and the intake taking
turns so machine load falls on both alike. "intake read" is `adapters.read_sheet` (the zip and
XML checks, the read in the warm limited child, the rows sent back, the layout found);
"validate" is `logic.group_rows`. CPU time adds the reader child's own (it runs on the other
core while this process decodes, so wall time can be below the CPU sum). The reader's peak RSS
is the child's VmHWM for that one sheet. A 100,000-row sheet is over intake's per-upload limit
(50,000 rows), so for the memory figure alone the guard's row limit is lifted."""

from __future__ import annotations

import io
import statistics
import sys
import time
from datetime import date
from unittest import mock

import python_calamine

from devtools.demo import demo_sheet
from services.ingest import adapters, logic, rows, sheet_guard, sheet_reader, values

TODAY = date(2026, 11, 25)


def forget() -> None:
    """Empty intake's caches of parsed values, so each round reads the sheet as a new upload
    of new patients would be read (the caches are per process, kept across uploads)."""
    for cached in (
        values.parse_date,
        values.parse_flag,
        values.check_dates,
        values.normalise_phone,
        rows._patient,
        rows._lab_result,
    ):
        cached.cache_clear()


def bare_read(data: bytes) -> int:
    workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    return len(workbook.get_sheet_by_index(0).to_python())


def main(runs: int = 7) -> None:
    data = demo_sheet(1250, sample_date=date(2026, 11, 20))  # 8 results each: 10,000 rows
    sheet_reader.warm()
    adapters.read_sheet(data, "bench.xlsx")  # the child is warm from here on, as in service
    pool = sheet_reader._POOL  # the process's warm children, as the service uses them
    bare, read, validate, total, bare_cpu, total_cpu = [], [], [], [], [], []
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        assert bare_read(data) == 10_001
        bare.append(time.perf_counter() - started)
        bare_cpu.append(time.process_time() - cpu)

        forget()
        started, cpu, child = time.perf_counter(), time.process_time(), pool.cpu_seconds
        table = adapters.read_sheet(data, "bench.xlsx")
        read.append(time.perf_counter() - started)
        outcome = logic.group_rows(
            table.header, table.rows, "GB", TODAY, row_numbers=table.row_numbers
        )
        total.append(time.perf_counter() - started)
        total_cpu.append(time.process_time() - cpu + pool.cpu_seconds - child)
        validate.append(total[-1] - read[-1])
        assert outcome.rows_accepted == 10_000, outcome.rejected[:3]

    middle = statistics.median(bare)
    print(f"10,000 rows, median of {runs} runs")
    print(f"bare calamine read      {middle:6.3f} s")
    for label, times in (("intake read (checked)", read), ("intake read + validate", total)):
        median = statistics.median(times)
        print(f"{label:23s} {median:6.3f} s  ({median / middle:.2f}x the bare read)")
    print(f"  of which validate     {statistics.median(validate):6.3f} s")
    cpu_bare, cpu_total = statistics.median(bare_cpu), statistics.median(total_cpu)
    print(
        f"CPU time (both processes; less sensitive to other load): bare {cpu_bare:.3f} s, "
        f"intake read + validate {cpu_total:.3f} s ({cpu_total / cpu_bare:.2f}x)"
    )
    goal = statistics.median(total)
    verdict = "met" if goal <= 1.3 * middle and goal < 2 else "NOT met"
    print(f"goal (<= 1.3x and < 2 s): {verdict}")

    print("reader child peak RSS for one sheet (VmHWM)")
    _, small = sheet_reader.read_measured(data, "bench.xlsx")
    big_data = demo_sheet(12_500, sample_date=date(2026, 11, 20))  # 100,000 rows
    with mock.patch.object(sheet_guard, "MAX_SHEET_ROWS", 200_000):
        sheets, big = sheet_reader.read_measured(big_data, "bench.xlsx")
    assert len(sheets[0].rows) == 100_001
    print(f"   10,000 rows  {small / 1024:6.1f} MB   ({len(data) / 1e6:.1f} MB file)")
    print(f"  100,000 rows  {big / 1024:6.1f} MB   ({len(big_data) / 1e6:.1f} MB file)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
