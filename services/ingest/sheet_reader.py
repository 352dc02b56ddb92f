"""Reading an uploaded sheet in a subprocess with memory and time limits: whatever a hostile
file does to the reader, the ingest process keeps running and the technician gets a message.

`read_workbook(data, filename)` checks the file (`sheet_guard`), then runs this module as a
child (`python -m services.ingest.sheet_reader`): it reads every worksheet with
python-calamine (.xlsx, .xlsm: macros are never run, .xls, .ods) or the csv module (delimiter
and encoding sniffed) and writes the cells back as JSON. Imports stay light: the child starts
in well under 100 ms."""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from services.ingest import sheet_guard
from services.ingest.errors import SheetError

MEMORY_LIMIT = 400 * 1024 * 1024  # address space of the child
CPU_SECONDS = 8
WALL_SECONDS = 10.0
CSV_ENCODINGS = ("utf-8-sig", "cp1252")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RawSheet:
    """One worksheet as read: rows of cells (str, float, int, bool, date, datetime or None)
    and its merged ranges as (first row, first column, last row, last column), 0-based."""

    name: str
    rows: list[list[Any]]
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)


def read_workbook(data: bytes, filename: str) -> list[RawSheet]:
    """Every worksheet of an upload, or SheetError saying why it cannot be read."""
    kind = sheet_guard.check(data, filename)
    try:
        done = subprocess.run(  # noqa: S603 - our own module; the file goes in on stdin
            [sys.executable, "-s", "-m", "services.ingest.sheet_reader", kind],
            input=data,
            capture_output=True,
            timeout=WALL_SECONDS,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SheetError(
            f"'{filename}' took too long to read (over {WALL_SECONDS:.0f} s); save it again "
            "from Excel with only the results, or split it into batches"
        ) from None
    if done.returncode != 0:
        raise SheetError(
            f"'{filename}' needs more memory or time to read than a results sheet should "
            "(it may be damaged or hostile); save it again from Excel with only the results"
        )
    answer = json.loads(done.stdout, object_hook=_decode)
    if answer.get("error"):
        raise SheetError(f"'{filename}' {answer['error']}")
    return [
        RawSheet(s["name"], s["rows"], [tuple(m) for m in s["merged"]]) for s in answer["sheets"]
    ]


def _decode(value: dict[str, Any]) -> Any:
    if "$dt" in value:
        return datetime.fromisoformat(value["$dt"])
    if "$d" in value:
        return date.fromisoformat(value["$d"])
    return value


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, time | timedelta):
        return str(value)
    raise TypeError(type(value).__name__)


# --- the child ---------------------------------------------------------------------------


def _read_zip_or_xls(data: bytes) -> list[dict[str, Any]]:
    import python_calamine  # only the child needs it

    workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    sheets = []
    for name in workbook.sheet_names:
        sheet = workbook.get_sheet_by_name(name)
        rows = sheet.to_python(skip_empty_area=False)
        merged = []
        try:
            for (top, left), (bottom, right) in sheet.merged_cell_ranges or []:
                merged.append((top, left, bottom, right))
        except (AttributeError, TypeError, ValueError):  # formats without merge information
            merged = []
        sheets.append(
            {
                "name": name,
                "rows": [[c if c != "" else None for c in r] for r in rows],
                "merged": merged,
            }
        )
    return sheets


def _read_csv(data: bytes) -> list[dict[str, Any]]:
    encodings = ("utf-16",) if data.startswith((b"\xff\xfe", b"\xfe\xff")) else CSV_ENCODINGS
    for encoding in encodings:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise SheetError("is not text in UTF-8, UTF-16 or Windows-1252")
    sample = text[:20_000]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = [[c.strip() or None for c in row] for row in csv.reader(io.StringIO(text), dialect)]
    return [{"name": "CSV", "rows": rows, "merged": []}]


def _child(kind: str) -> int:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    data = sys.stdin.buffer.read()
    try:
        sheets = _read_csv(data) if kind == "csv" else _read_zip_or_xls(data)
        answer: dict[str, Any] = {"sheets": sheets}
    except SheetError as error:
        answer = {"error": str(error)}
    except MemoryError:
        return 3
    except Exception as error:  # the reader's many kinds of error
        what = "workbook" if kind != "csv" else "CSV file"
        answer = {"error": f"is not a readable {what} ({type(error).__name__}: {error})"[:300]}
    sys.stdout.write(json.dumps(answer, default=_encode))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
