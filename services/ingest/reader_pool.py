"""Warm reader processes for uploaded sheets: each one a child running
`services.ingest.sheet_reader` that has imported its reader once and then reads sheet after
sheet, each under its own limits (address space for the process, CPU seconds per sheet, wall
time enforced here). A sheet that kills the child, or makes it hang, is refused and the child
replaced; a child that has read many sheets or used much CPU is retired, so whatever one sheet
leaves behind does not pile up.

The child is `python -m services.ingest.sheet_reader <memory limit>`. The protocol, over its
stdin and stdout: one JSON line `{"kind": ..., "size": n}` followed by the n bytes of the
file; back come frames (4-byte big-endian length, then JSON): `{"sheet": name, "merged":
[...]}`, `{"rows": [...]}` (a few thousand at a time, so the child never holds a whole sheet
of Python objects), and finally `{"end": true, ...}` with the job's peak RSS and the child's
CPU seconds, or `{"error": "..."}`. Decoding happens as frames arrive, on this side, while the
child encodes the next ones."""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
MAX_JOBS = 200  # sheets one child reads before it is replaced
MAX_CPU_SECONDS = 120.0  # CPU time one child may spend over its life before it is replaced
IDLE_WORKERS = 2  # warm children kept per process (two uploads read at once)
OUT_OF_MEMORY = 3  # the child's exit status after a Python MemoryError
# How a child ends when memory runs out: that exit, or SIGABRT (Rust aborts when an
# allocation fails, which is how calamine meets the address-space limit).
MEMORY_ENDINGS = (OUT_OF_MEMORY, -signal.SIGABRT)
_HEADER = struct.Struct(">I")


class WorkerFailed(Exception):
    """The child died or was killed while reading (memory or CPU limit, crash, time out)."""

    def __init__(self, timed_out: bool, fresh: bool, out_of_memory: bool = False) -> None:
        super().__init__("timed out" if timed_out else "died")
        self.timed_out = timed_out
        self.fresh = fresh  # it had read nothing before: the sheet itself is to blame
        self.out_of_memory = out_of_memory  # memory ran out (not SIGXCPU, not a time out)


@dataclass
class Job:
    """What one read brought back: the frames before the end, and the end frame's figures."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    peak_rss_kb: int = 0
    cpu_seconds: float = 0.0  # the child's CPU time for this sheet


class Worker:
    def __init__(self, memory_limit: int) -> None:
        self.memory_limit = memory_limit
        self.process = subprocess.Popen(  # noqa: S603 - our own module, our own arguments
            [sys.executable, "-s", "-m", "services.ingest.sheet_reader", str(memory_limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")},
        )
        self.jobs = 0
        self.cpu_seconds = 0.0
        self._buffer = bytearray()

    @property
    def spent(self) -> bool:
        return self.jobs >= MAX_JOBS or self.cpu_seconds >= MAX_CPU_SECONDS

    def read(self, kind: str, data: bytes, timeout: float, decode: Callable[[bytes], Any]) -> Job:
        deadline = time.monotonic() + timeout
        fresh = self.jobs == 0
        self.jobs += 1
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps({"kind": kind, "size": len(data)}).encode() + b"\n")
            stdin.write(data)
            stdin.flush()
            job = Job()
            while True:
                frame = decode(self._frame(deadline))
                if "end" in frame:
                    job.peak_rss_kb = int(frame.get("peak_rss_kb", 0))
                    spent = float(frame.get("cpu_seconds", 0.0))
                    job.cpu_seconds, self.cpu_seconds = spent - self.cpu_seconds, spent
                    return job
                if "error" in frame:
                    job.error = str(frame["error"])
                    return job
                job.frames.append(frame)
        except TimeoutError:
            self.kill()
            raise WorkerFailed(timed_out=True, fresh=fresh) from None
        except (OSError, EOFError, ValueError):
            self.kill()
            memory = self.process.returncode in MEMORY_ENDINGS
            raise WorkerFailed(timed_out=False, fresh=fresh, out_of_memory=memory) from None

    def _frame(self, deadline: float) -> bytes:
        header = self._take(_HEADER.size, deadline)
        return self._take(_HEADER.unpack(header)[0], deadline)

    def _take(self, size: int, deadline: float) -> bytes:
        stdout: IO[bytes] | None = self.process.stdout
        assert stdout is not None
        descriptor = stdout.fileno()
        while len(self._buffer) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([descriptor], [], [], left)[0]:
                raise TimeoutError
            piece = os.read(descriptor, max(size - len(self._buffer), 1 << 20))
            if not piece:
                raise EOFError
            self._buffer += piece
        taken = bytes(self._buffer[:size])
        del self._buffer[:size]
        return taken

    def kill(self) -> None:
        """Stop the child (a read that failed leaves it in an unknown state)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class ReaderPool:
    """Idle warm children, taken one per read (two reads at once get two children), each
    limited to `memory_limit` bytes of address space."""

    def __init__(self, memory_limit: int) -> None:
        self.memory_limit = memory_limit
        self._idle: list[Worker] = []
        self._lock = threading.Lock()
        self.cpu_seconds = 0.0  # children's CPU time over every sheet read (for benchmarks)
        atexit.register(self.close)

    def warm(self) -> None:
        """Start a child now, so the first upload does not wait for Python to start."""
        with self._lock:
            if not self._idle:
                self._idle.append(Worker(self.memory_limit))

    @property
    def idle(self) -> list[int]:
        """Process ids of the warm children waiting for a sheet."""
        with self._lock:
            return [worker.process.pid for worker in self._idle]

    def read(self, kind: str, data: bytes, timeout: float, decode: Callable[[bytes], Any]) -> Job:
        """Read `data` in a warm child. A child that runs out of memory after earlier sheets
        is retried once on a fresh child (memory an earlier sheet left fragmented must not
        refuse a good one); any other death, or a time out, raises WorkerFailed."""
        worker = self._take()
        try:
            job = worker.read(kind, data, timeout, decode)
        except WorkerFailed as failed:
            self._replace()
            if failed.fresh or not failed.out_of_memory:
                raise
            worker = Worker(self.memory_limit)
            job = worker.read(kind, data, timeout, decode)
        self._give_back(worker)
        with self._lock:
            self.cpu_seconds += job.cpu_seconds
        return job

    def _take(self) -> Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.poll() is None:
                    return worker
                worker.kill()
        return Worker(self.memory_limit)

    def _give_back(self, worker: Worker) -> None:
        with self._lock:
            if not worker.spent and len(self._idle) < IDLE_WORKERS:
                self._idle.append(worker)
                return
        worker.kill()
        self._replace()

    def _replace(self) -> None:
        """Start a successor right away: it boots while the caller goes on."""
        with self._lock:
            if not self._idle:
                self._idle.append(Worker(self.memory_limit))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()
