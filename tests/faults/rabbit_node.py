"""A RabbitMQ node owned by one fault-test module: its own node name, ports, storage, log and
Erlang cookie, so restarting, freezing or alarming it never touches the shared broker other
tests (and colleagues) use. Debian's `rabbitmq-server`, started directly (not through the
`su rabbitmq` wrapper), plugins off (nothing here needs the management API)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import aio_pika

from devtools.launcher import ends_with_this_process, free_port

SBIN = Path("/usr/lib/rabbitmq/bin")


class RabbitNode:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.name = f"rf-fault-{os.getpid()}-{secrets.token_hex(3)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        base.mkdir(parents=True, exist_ok=True)
        cookie = base / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "vm_memory_high_watermark.relative = 0.4\n"
            "disk_free_limit.absolute = 50MB\n"
        )
        (base / "rabbitmq-env.conf").write_text("")  # not /etc's: its NODENAME is the shared one
        self.env = {
            **os.environ,
            "HOME": str(base),  # the cookie
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def launch(self) -> subprocess.Popen[bytes]:
        log = (self.base / "server.log").open("ab")
        self.process = subprocess.Popen(
            [str(SBIN / "rabbitmq-server")],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=ends_with_this_process(),
        )
        log.close()
        return self.process

    async def start(self, timeout: float = 120) -> float:
        """Start the node and wait until it takes AMQP connections; seconds it took."""
        started = time.monotonic()
        process = self.launch()
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited; see {self.base / 'log'}")
            if await self.accepts_connections():
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"RabbitMQ node not up in {timeout}s; see {self.base}")
            await asyncio.sleep(0.3)

    async def accepts_connections(self) -> bool:
        try:  # the port first: aio_pika logs every refused attempt
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.close()
        except OSError:
            return False
        try:
            connection = await asyncio.wait_for(aio_pika.connect(self.url), 5)
        except Exception:
            return False
        await connection.close()
        return True

    def ctl(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [str(SBIN / "rabbitmqctl"), "-n", self.name, *args],
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout.decode()

    def stop(self) -> None:
        """Stop the whole node (SIGTERM to its group: the node shuts down cleanly)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def signal(self, signum: signal.Signals) -> None:
        """SIGSTOP / SIGCONT / SIGKILL the node's whole process group (the Erlang VM)."""
        assert self.process is not None
        os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait()
