"""Reading an uploaded sheet in a subprocess with memory and time limits: whatever a hostile
file does to the reader, the ingest process keeps running and the technician gets a message.

`read_workbook(data, filename)` checks the file (`sheet_guard`), then hands it to a warm child
(`reader_pool`: `python -m services.ingest.sheet_reader`, reused sheet after sheet,
replaced when a sheet kills or hangs it): it reads every worksheet with python-calamine (.xlsx,
.xlsm: macros are never run, .xls, .ods) or the csv module (delimiter and encoding sniffed)
and writes the cells back as JSON, a few thousand rows at a time. Imports stay light: the
child starts in well under 100 ms.

What streams: the child's Python objects (rows are converted and sent a chunk at a time) and
the JSON between the processes. What cannot with calamine: its own grid of the worksheet's
cells (in Rust) is built whole before the first row comes out, so the child's peak memory
still grows with the sheet; `bench.sheet_intake` measures it."""

from __future__ import annotations

import csv
import io
import json
import resource
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import IO, Any

from services.ingest import reader_pool, sheet_guard
from services.ingest.errors import SheetError

MEMORY_LIMIT = 400 * 1024 * 1024  # address space of the child
CPU_SECONDS = 8
WALL_SECONDS = 10.0
CSV_ENCODINGS = ("utf-8-sig", "cp1252")
CHUNK_ROWS = 2000  # rows per frame from the child


@dataclass
class RawSheet:
    """One worksheet as read: rows of cells (str, float, int, bool, date, datetime or None)
    and its merged ranges as (first row, first column, last row, last column), 0-based."""

    name: str
    rows: list[list[Any]]
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)


_POOL = reader_pool.ReaderPool(MEMORY_LIMIT)


def read_workbook(data: bytes, filename: str) -> list[RawSheet]:
    """Every worksheet of an upload, or SheetError saying why it cannot be read."""
    return read_measured(data, filename)[0]


def read_measured(
    data: bytes, filename: str, pool: reader_pool.ReaderPool | None = None
) -> tuple[list[RawSheet], int]:
    """The worksheets, and the reader's peak resident memory (kB) while reading them.
    `pool`: the warm children to read in (default: this process's)."""
    kind = sheet_guard.check(data, filename)
    try:
        job = (pool or _POOL).read(kind, data, WALL_SECONDS, _decode_frame)
    except reader_pool.WorkerFailed as failed:
        if failed.timed_out:
            raise SheetError(
                f"'{filename}' took too long to read (over {WALL_SECONDS:.0f} s); save it again "
                "from Excel with only the results, or split it into batches"
            ) from None
        raise SheetError(
            f"'{filename}' needs more memory or time to read than a results sheet should "
            "(it may be damaged or hostile); save it again from Excel with only the results"
        ) from None
    if job.error:
        raise SheetError(f"'{filename}' {job.error}")
    sheets: list[RawSheet] = []
    for frame in job.frames:
        if "sheet" in frame:
            sheets.append(RawSheet(frame["sheet"], [], [tuple(m) for m in frame["merged"]]))
        elif sheets:
            sheets[-1].rows.extend(frame["rows"])
    return sheets, job.peak_rss_kb


def warm() -> None:
    """Start the reader child ahead of the first upload (the ingest service does at start)."""
    _POOL.warm()


def _decode_frame(frame: bytes) -> Any:
    return json.loads(frame, object_hook=_decode)


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


def _read_zip_or_xls(data: bytes) -> Iterator[dict[str, Any]]:
    import python_calamine  # only the child needs it

    workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    for name in workbook.sheet_names:
        sheet = workbook.get_sheet_by_name(name)
        merged = []
        try:
            for (top, left), (bottom, right) in sheet.merged_cell_ranges or []:
                merged.append((top, left, bottom, right))
        except (AttributeError, TypeError, ValueError):  # formats without merge information
            merged = []
        yield {"sheet": name, "merged": merged}
        # iter_rows starts at row 1 but at the first used column: pad to column A, as
        # to_python(skip_empty_area=False) would, without building the whole list.
        pad = [None] * (sheet.start[1] if sheet.start else 0)
        chunk: list[list[Any]] = []
        for row in sheet.iter_rows():
            chunk.append([*pad, *[c if c != "" else None for c in row]])
            if len(chunk) == CHUNK_ROWS:
                yield {"rows": chunk}
                chunk = []
        if chunk:
            yield {"rows": chunk}


def _read_csv(data: bytes) -> Iterator[dict[str, Any]]:
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
    yield {"sheet": "CSV", "merged": []}
    chunk: list[list[str | None]] = []
    for row in csv.reader(io.StringIO(text), dialect):
        chunk.append([c.strip() or None for c in row])
        if len(chunk) == CHUNK_ROWS:
            yield {"rows": chunk}
            chunk = []
    if chunk:
        yield {"rows": chunk}


def _send(out: IO[bytes], answer: dict[str, Any]) -> None:
    body = json.dumps(answer, default=_encode).encode()
    out.write(struct.pack(">I", len(body)) + body)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_kb() -> int:
    """Peak resident memory since the last reset (VmHWM), or over the child's life."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")  # resets VmHWM to the current RSS (Linux)
    except OSError:
        pass


def _read_one(kind: str, data: bytes, out: IO[bytes]) -> None:
    """Read one file and send its frames. The CPU limit is this sheet's: the child's time so
    far plus CPU_SECONDS (SIGXCPU ends the child past it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(_cpu_seconds()) + CPU_SECONDS
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    _reset_peak()
    try:
        for frame in _read_csv(data) if kind == "csv" else _read_zip_or_xls(data):
            _send(out, frame)
    except SheetError as error:
        _send(out, {"error": str(error)})
        return
    except MemoryError:
        raise
    except Exception as error:  # the reader's many kinds of error
        what = "workbook" if kind != "csv" else "CSV file"
        _send(out, {"error": f"is not a readable {what} ({type(error).__name__}: {error})"[:300]})
        return
    _send(out, {"end": True, "peak_rss_kb": _peak_rss_kb(), "cpu_seconds": _cpu_seconds()})


def _serve(memory_limit: int) -> int:
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    import python_calamine  # noqa: F401 - imported once, before the first sheet

    requests, out = sys.stdin.buffer, sys.stdout.buffer
    while line := requests.readline():
        request = json.loads(line)
        data = requests.read(int(request["size"]))
        try:
            _read_one(str(request["kind"]), data, out)
        except MemoryError:
            return reader_pool.OUT_OF_MEMORY  # the parent sees the pipe close, replaces us
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve(int(sys.argv[1])))
