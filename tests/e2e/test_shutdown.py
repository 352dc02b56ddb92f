"""Clean shutdown: a service told to stop (SIGTERM) exits within 10 s and takes its
LibreOffice with it; a test run or `resultflow run` killed from outside, even with SIGKILL,
leaves no service, server or LibreOffice behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

RUNNER = """
import json, sys, time
from pathlib import Path
from devtools.launcher import Stack, local_settings

mongodb_uri, amqp_url, work = sys.argv[1:4]
settings = local_settings(mongodb_uri, amqp_url, "shutdown_" + Path(work).name, Path(work))
with Stack(settings, Path(work) / "logs", workers={"convert": 1}) as stack:
    print(json.dumps({name: p.pid for name, p in stack.processes.items()}), flush=True)
    time.sleep(600)
"""


def start_runner(mongodb_uri: str, amqp_url: str, work: Path) -> subprocess.Popen[bytes]:
    """A stand-in for a test run or `resultflow run`: it starts a stack and waits."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(RUNNER), mongodb_uri, amqp_url, str(work)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line mentions `text` (LibreOffice's profile is under it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return [pid for pid in found if running(pid)]


async def gone_within(seconds: float, probe: object) -> float:
    """Seconds until `probe()` is empty; fails after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not probe():  # type: ignore[operator]
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"still running after {seconds}s: {probe()}")  # type: ignore[operator]


async def test_a_stopped_converter_exits_quickly_and_a_killed_run_leaves_nothing_behind(
    mongodb_uri: str, amqp_url: str, tmp_path: Path, empty_queues: None
) -> None:
    work = tmp_path / f"run-{uuid.uuid4().hex[:6]}"
    runner = start_runner(mongodb_uri, amqp_url, work)
    try:
        assert runner.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(runner.stdout.readline), timeout=120)
        pids: dict[str, int] = json.loads(line)
        converter = pids["convert-1"]

        offices = await eventually(
            lambda: processes_mentioning(f"{work}/office-{converter}-"), timeout=90, interval=0.5
        )
        await asyncio.sleep(3)  # warm: the converter is up and consuming

        os.kill(converter, signal.SIGTERM)
        took = await gone_within(10, lambda: [p for p in [converter, *offices] if running(p)])
        print(f"convert stopped with its LibreOffice in {took:.1f}s")

        runner.kill()  # the harshest end a test run can have
        runner.wait()
        await gone_within(
            15, lambda: [p for p in pids.values() if running(p)] + processes_mentioning(str(work))
        )
    finally:
        if runner.poll() is None:
            runner.kill()
