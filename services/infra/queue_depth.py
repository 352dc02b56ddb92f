"""How many messages wait in each queue (and its dead-letter queue), and how many consumers
read it: passive declares over AMQP, which need no broker permission and no management
plugin, answered by the broker itself (never a cached declaration)."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from contracts import topology


class QueueDepths:
    def __init__(self, amqp_url: str) -> None:
        self._url = amqp_url
        self._connection: AbstractRobustConnection | None = None

    async def counts(self) -> dict[str, tuple[int, int]]:
        """queue name -> (messages ready, consumers), for every queue that exists."""
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect_robust(self._url)
        found: dict[str, tuple[int, int]] = {}
        channel = await self._connection.channel()
        try:
            for queue in topology.QUEUES:
                for name in (queue.name, queue.dead_letter_queue):
                    try:
                        declared = await channel.declare_queue(name, passive=True)
                    except aio_pika.exceptions.ChannelClosed:
                        channel = await self._connection.channel()  # not declared yet
                        continue
                    result = declared.declaration_result
                    found[name] = (result.message_count or 0, result.consumer_count or 0)
        finally:
            await channel.close()
        return found

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
