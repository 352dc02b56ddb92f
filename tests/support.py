"""Start the real servers tests talk to: a MongoDB-protocol server and a RabbitMQ vhost.

`secantusd-py` (the pinned `secantusdb`) runs as a separate process on a free port with its
own storage; RabbitMQ gets a fresh virtual host per test session, so concurrent runs and
earlier runs never see each other's queues. Set TEST_MONGODB_URI / TEST_AMQP_URL to use
servers you run yourself (e.g. MongoDB 7).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pymongo import MongoClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def secantusd_command() -> str:
    found = Path(sys.executable).with_name("secantusd-py")
    return str(found) if found.exists() else (shutil.which("secantusd-py") or "secantusd-py")


@contextlib.contextmanager
def mongodb_server(storage: Path) -> Iterator[str]:
    port = free_port()
    log = (storage.parent / f"secantusd-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            secantusd_command(),
            *("--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage)),
            "--sync-on-commit",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    uri = f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                MongoClient(uri, serverSelectionTimeoutMS=500).admin.command("ping")
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"secantusd-py did not start, see {log.name}") from None
                time.sleep(0.2)
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True)


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


async def eventually(
    probe: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1
) -> Any:
    """Await `probe()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def drain(amqp_url: str, queue: str) -> list[dict[str, Any]]:
    """Take every message waiting in `queue` (acking them) and return their JSON bodies."""
    import json

    import aio_pika

    bodies: list[dict[str, Any]] = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.get_queue(queue, ensure=True)
        while (message := await declared.get(fail=False)) is not None:
            await message.ack()
            bodies.append(json.loads(message.body))
    return bodies
