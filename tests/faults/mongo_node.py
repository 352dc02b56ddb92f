"""A `secantusd-py` server owned by one fault-test module, on a port and storage path of its
own, so it can be frozen (SIGSTOP), killed and started again on the same port and data, as
a crashed or paused MongoDB would be, without touching the session's server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pymongo import AsyncMongoClient

from devtools.launcher import ends_with_this_process, free_port


class MongoNode:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.storage = base / "data"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?retryWrites=false&directConnection=true"

    def launch(self) -> subprocess.Popen[bytes]:
        log = (self.base / "secantusd.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("secantusd-py")),
                *("--host", "127.0.0.1", "--port", str(self.port)),
                *("--storage-path", str(self.storage), "--sync-on-commit"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=ends_with_this_process(),
        )
        log.close()
        return self.process

    async def start(self, timeout: float = 90) -> float:
        """Start it (again, on the same port and data) and wait until it answers a ping."""
        started = time.monotonic()
        process = self.launch()
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            self.uri, serverSelectionTimeoutMS=500
        )
        try:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"secantusd-py exited; see {self.base}")
                with contextlib.suppress(Exception):
                    await client.admin.command("ping")
                    return time.monotonic() - started
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"secantusd-py not up in {timeout}s; see {self.base}")
                await asyncio.sleep(0.2)
        finally:
            await client.close()

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
