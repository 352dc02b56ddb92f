"""What a killed run leaves behind: its processes stay recorded in the run's process registry,
and the next start ends those still running (their whole process group) and forgets the rest,
never touching a process that merely got a recorded pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.infra.process_registry import (
    ProcessRecord,
    alive,
    read_records,
    reap,
    write_record,
)

# A stand-in for a service: its command line names a `services.` module like ours do, and,
# like convert with its LibreOffice, it has a child in its process group.
LEFTOVER = (
    "import subprocess, sys, time; "
    "child = subprocess.Popen(['sleep', '600']); "
    "open(sys.argv[1], 'w').write(str(child.pid)); time.sleep(600)"
)
# The run that started it, killed: it starts the process in its own session and is gone.
KILLED_RUN = (
    "import subprocess, sys; print(subprocess.Popen(sys.argv[1:], start_new_session=True, "
    "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)"
)


def left_behind(*argv: str) -> tuple[int, int]:
    """The pid of `argv` started by a run that has ended since, and that run's pid."""
    run = subprocess.Popen([sys.executable, "-c", KILLED_RUN, *argv], stdout=subprocess.PIPE)
    output, _ = run.communicate(timeout=30)
    return int(output), run.pid


@pytest.fixture
def started() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def record_of(pid: int, name: str, run_pid: int) -> ProcessRecord:
    return ProcessRecord(name, name.split("-")[0], pid, pid, "", "", time.time(), run_pid)


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_the_next_start_ends_a_killed_runs_service_with_its_children_and_forgets_it(
    tmp_path: Path, started: list[int]
) -> None:
    child_file = tmp_path / "child.pid"
    service, run = left_behind(
        sys.executable, "-c", LEFTOVER, str(child_file), "services.render.main"
    )
    started.append(service)
    while not child_file.exists() or not child_file.read_text():
        time.sleep(0.05)
    child = int(child_file.read_text())
    write_record(tmp_path, record_of(service, "render-1", run))

    ended = reap(tmp_path, grace=5)

    assert [record.name for record in ended] == ["render-1"]
    assert gone_within(service, 10)
    assert gone_within(child, 10), "the service's child (its process group) was left running"
    assert read_records(tmp_path) == []


def test_a_recorded_pid_now_held_by_a_stranger_is_left_alone(
    tmp_path: Path, started: list[int]
) -> None:
    stranger, run = left_behind("sleep", "600")
    started.append(stranger)
    write_record(tmp_path, record_of(stranger, "convert-2", run))
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_record(tmp_path, record_of(gone.pid, "notify-1", run))

    assert reap(tmp_path, grace=1) == []

    assert alive(stranger)
    assert read_records(tmp_path) == []  # both records forgotten


def test_the_processes_of_a_run_still_going_are_left_to_it(
    tmp_path: Path, started: list[int]
) -> None:
    # Another run on the same machine (a colleague's test run, this run's own database).
    service, _ = left_behind(sys.executable, "-c", "import time; time.sleep(600)", "services.x")
    started.append(service)
    write_record(tmp_path, record_of(service, "ingest-1", os.getpid()))

    assert reap(tmp_path, grace=1) == []

    assert alive(service)
    assert [record.name for _, record in read_records(tmp_path)] == ["ingest-1"]
