"""Start the whole system on one machine: the MongoDB-protocol server and every service as
its own process. Used by `resultflow run` (the README's run command), the end-to-end test
and bench/.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aio_pika
from pymongo import MongoClient

from contracts import topology
from services.infra.process_registry import ProcessRecord, reap, remove_record, write_record
from services.infra.settings import Settings

# service -> processes; convert is the CPU-heavy one and scales by running more.
WORKERS = {"ingest": 1, "render": 1, "convert": 2, "notify": 1}
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _executable(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def _stop(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def ends_with_this_process() -> Callable[[], None]:
    """A `preexec_fn` that makes the child receive SIGTERM when the process starting it
    ends, however it ends (SIGKILL included: Linux's PR_SET_PDEATHSIG), so a killed test
    run or `resultflow run` leaves no service or database server behind. Each service then
    shuts down as on any SIGTERM (convert stops its LibreOffice)."""
    parent = os.getpid()

    def in_child() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return in_child


@contextlib.contextmanager
def mongodb_server(
    storage: Path, port: int | None = None, work_dir: Path | None = None
) -> Iterator[str]:
    """`secantusd-py` (pinned `secantusdb`) as a separate process; yields its URI. With
    `work_dir`, it is recorded in that run's process registry (`resultflow status`, the
    reaper)."""
    port = port or free_port()
    storage.mkdir(parents=True, exist_ok=True)
    log = (storage.parent / f"secantusd-{port}.log").open("ab")
    process = subprocess.Popen(  # noqa: S603 - our own pinned server
        [
            _executable("secantusd-py"),
            *("--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage)),
            "--sync-on-commit",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=ends_with_this_process(),
    )
    uri = f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true"
    record = None
    if work_dir is not None:
        pid = process.pid
        record = write_record(
            work_dir,
            ProcessRecord("mongodb", "mongodb", pid, pid, "", "", time.time(), os.getpid()),
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                MongoClient(uri, serverSelectionTimeoutMS=500).admin.command("ping")
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"secantusd-py did not start; see {log.name}") from None
                time.sleep(0.2)
        yield uri
    finally:
        _stop(process)
        log.close()
        if record is not None:
            remove_record(record)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True)  # noqa: S603,S607


@contextlib.contextmanager
def rabbitmq_vhost(base_url: str = "amqp://guest:guest@127.0.0.1:5672/") -> Iterator[str]:
    vhost = f"resultflow-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield base_url.rstrip("/") + "/" + vhost
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _rabbitmqctl("delete_vhost", vhost)


def local_settings(mongodb_uri: str, amqp_url: str, database: str, work_dir: Path) -> Settings:
    """Settings for a whole system on this machine, its gateway on a free port."""
    port = free_port()
    return Settings(
        MONGODB_URI=mongodb_uri,
        AMQP_URL=amqp_url,
        mongodb_database=database,
        public_base_url=f"http://127.0.0.1:{port}",
        gateway_port=port,
        mllp_port=free_port(),  # the HL7 v2 listener (`services.ingest.mllp_main`)
        work_dir=work_dir,
    )


def environment(settings: Settings) -> dict[str, str]:
    """The environment that gives a service process exactly these settings."""
    values = settings.model_dump(mode="json")
    env = {f"RESULTFLOW_{name.upper()}": str(value) for name, value in values.items()}
    env["MONGODB_URI"], env["AMQP_URL"] = settings.mongodb_uri, settings.amqp_url
    return env


class Stack:
    """Every service as its own process, logs in `log_dir`, all stopped on exit."""

    def __init__(
        self, settings: Settings, log_dir: Path, workers: dict[str, int] | None = None
    ) -> None:
        self.settings = settings
        self.env = {**os.environ, **environment(settings)}
        self.log_dir = log_dir
        self.workers = workers or WORKERS
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._commands: dict[str, list[str]] = {}
        self.killed_pids: list[int] = []

    def _spawn(self, name: str, args: list[str]) -> None:
        self._commands[name] = args
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our own services
            [sys.executable, *args],
            env={**self.env, "RESULTFLOW_PROCESS_NAME": name},  # its name in `resultflow status`
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: convert's LibreOffice goes too
            preexec_fn=ends_with_this_process(),
        )
        log.close()

    def start(self) -> None:
        # What a killed earlier run with this work dir left running goes first.
        reap(self.settings.work_dir)
        for service, count in self.workers.items():
            for n in range(count):
                factory = f"services.{service}.main:create_app"
                self._spawn(f"{service}-{n + 1}", ["-m", "faststream", "run", "--factory", factory])
        self._spawn("gateway", ["-m", "services.gateway.main"])
        self._spawn("ingest-mllp", ["-m", "services.ingest.mllp_main"])

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}); see {self.log_dir}")

    async def wait_ready(self, timeout: float = 120) -> None:
        """Until every queue has its consumers and the gateway is ready (`/readyz` with the
        metrics token when there is one; else it answers its liveness check)."""
        import aiohttp

        expected = {q.name: self.workers.get(q.consumer, 1) for q in topology.QUEUES}
        deadline = time.monotonic() + timeout
        gateway_url = self.settings.public_base_url
        token = self.settings.metrics_token
        probe = "/readyz" if token else "/healthz"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection = await aio_pika.connect(self.settings.amqp_url)
        async with connection, aiohttp.ClientSession() as http:
            channel = await connection.channel()
            while True:
                self.check_alive()
                ready = True
                for name, consumers in expected.items():
                    try:
                        queue = await channel.declare_queue(name, passive=True)
                    except aio_pika.exceptions.ChannelClosed:
                        # Not declared yet (its service is starting): the broker closed the
                        # channel for asking; take a fresh one.
                        channel = await connection.channel()
                        ready = False
                        continue
                    ready &= (queue.declaration_result.consumer_count or 0) >= consumers
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(gateway_url + probe, headers=headers) as response:
                        ready &= response.status == 200
                        if ready:
                            return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"services not ready after {timeout}s; see {self.log_dir}")
                await asyncio.sleep(0.5)

    def kill(self, name: str) -> None:
        """SIGKILL one process (its whole group), as a crash or an OOM kill would."""
        process = self.processes[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.killed_pids.append(process.pid)

    def restart(self, name: str) -> None:
        """Start a stopped process again, as a supervisor would."""
        self._spawn(name, self._commands[name])

    def stop(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            _stop(process)

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
