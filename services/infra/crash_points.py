"""Named places where the fault tests make a service die (`tests/faults`).

`crash_point("convert.after_file_stored")` does nothing unless `RESULTFLOW_CRASH_AT` (a
comma-separated list of point names) names that point. Then the first process to reach it
creates the marker file `crashed-<point>` in `RESULTFLOW_CRASH_DIR` (exclusive create: one
process wins, even among replicas) and SIGKILLs itself, as an OOM kill or a power cut would:
no `finally`, no ack, no clean shutdown. The marker stays, so the restarted process (and
every other) passes the point from then on. A test arms a point again by deleting its marker.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import structlog

log = structlog.get_logger()

ARMED_VARIABLE = "RESULTFLOW_CRASH_AT"
MARKER_DIR_VARIABLE = "RESULTFLOW_CRASH_DIR"


def marker(point: str, directory: Path | None = None) -> Path:
    """The file whose existence means `point` has fired (and will not fire again)."""
    base = directory or Path(os.environ.get(MARKER_DIR_VARIABLE) or tempfile.gettempdir())
    return base / f"crashed-{point}"


def crash_point(point: str) -> None:
    armed = os.environ.get(ARMED_VARIABLE)
    if not armed or point not in armed.split(","):
        return  # production: one environment lookup
    try:
        os.close(os.open(marker(point), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return  # fired once already (maybe in another process)
    log.warning("crash_point.killing_this_process", point=point)
    os.kill(os.getpid(), signal.SIGKILL)
