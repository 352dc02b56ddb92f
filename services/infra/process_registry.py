"""The local system's running processes, for `resultflow status` and for the reaper.

Each service process writes one small JSON record (name, service, pid, process group, health
and metrics URLs) under `<work_dir>/processes/` when its health server listens, and removes it
when it stops cleanly. A record whose process is gone, or still running after the run that
started it was killed, is what `reap` looks for before a new local run starts.

Processes are told apart from an unrelated process that got the same pid by their command
line: ours run `services.` modules, `faststream` or the MongoDB-protocol server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()

OUR_COMMANDS = ("services.", "faststream", "secantusd", "resultflow")


@dataclass(frozen=True)
class ProcessRecord:
    name: str  # this process in the local system: "convert-2", "gateway"
    service: str  # what it runs: "convert"
    pid: int
    process_group: int
    health_url: str  # /healthz and /readyz below it; "" for a process without one
    metrics_url: str
    started_at: float
    run_pid: int = 0  # the run that started it (`resultflow run`, a test run); 0: unknown

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.pid}-{zlib.crc32(self.health_url.encode()):08x}.json"


def registry_dir(work_dir: Path) -> Path:
    return work_dir / "processes"


def write_record(work_dir: Path, record: ProcessRecord) -> Path:
    """Record `record` (atomically: a reader never sees half a file); returns its path."""
    directory = registry_dir(work_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / record.filename
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(asdict(record)))
    partial.replace(path)
    return path


def remove_record(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def read_records(work_dir: Path) -> list[tuple[Path, ProcessRecord]]:
    """Every record, oldest first; unreadable ones (a crash mid-write) are skipped."""
    found: list[tuple[Path, ProcessRecord]] = []
    directory = registry_dir(work_dir)
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            found.append((path, ProcessRecord(**data)))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(found, key=lambda item: (item[1].started_at, item[1].name))


def command_line(pid: int) -> str:
    """The process's command line ("" when it is gone or not ours to read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_ours(pid: int) -> bool:
    """Whether `pid` runs and is one of our processes (not a stranger that reused the pid)."""
    line = command_line(pid)
    return bool(line) and any(marker in line for marker in OUR_COMMANDS)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet waited for) has an empty command line.
    return bool(command_line(pid))


def _signal(record: ProcessRecord, signum: int) -> None:
    """`signum` to the record's process group when the process leads it (ours start their
    own session: LibreOffice and any other child goes too), else to the process alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if record.process_group == record.pid and os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, signum)
        else:
            os.kill(record.pid, signum)


def reap(work_dir: Path, grace: float = 10.0) -> list[ProcessRecord]:
    """End every recorded process still running whose run has ended (SIGTERM to its group,
    SIGKILL after `grace` s) and remove those records; returns the records of the processes
    ended. For the start of a local run: what a killed earlier run left behind must not hold
    ports, queues or LibreOffice profiles. A record whose run is alive is left as it is."""
    ended: list[ProcessRecord] = []
    me = os.getpid()
    for path, record in read_records(work_dir):
        if record.pid == me or (record.run_pid and alive(record.run_pid)):
            continue  # its run is still going (this one, or another on the machine)
        if alive(record.pid) and is_ours(record.pid):
            log.warning("process.reaping", name=record.name, pid=record.pid)
            _signal(record, signal.SIGTERM)
            ended.append(record)
        remove_record(path)
    deadline = time.monotonic() + grace
    while any(alive(r.pid) for r in ended) and time.monotonic() < deadline:
        time.sleep(0.1)
    for record in ended:
        if alive(record.pid):
            _signal(record, signal.SIGKILL)
    return ended
