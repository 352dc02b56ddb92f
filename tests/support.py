"""Start the real servers tests talk to: a MongoDB-protocol server and a RabbitMQ vhost.

`secantusd-py` (the pinned `secantusdb`) runs as a separate process on a free port with its
own storage; RabbitMQ gets a fresh virtual host per test session, so concurrent runs and
earlier runs never see each other's queues. Set TEST_MONGODB_URI / TEST_AMQP_URL to use
servers you run yourself (e.g. MongoDB 7).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from services.launcher import free_port, mongodb_server, rabbitmq_vhost

__all__ = ["drain", "eventually", "free_port", "mongodb_server", "rabbitmq_vhost"]


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
