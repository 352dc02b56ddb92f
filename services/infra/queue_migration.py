"""Moving a queue to the topology's arguments without losing a message.

RabbitMQ cannot change a queue's arguments (a declare with others fails with
PRECONDITION_FAILED), so a queue declared before an argument was added (at-least-once
dead-lettering) is rebuilt: its messages move to a holding queue, the queue is made again
with the new arguments, and they move back. Each message is published to its new queue,
confirmed, and only then acknowledged on the old one: a crash at any point leaves every
message in at least one queue, and running this again finishes the move.

Run it where nothing else consumes (`resultflow broker declare`, or a service's start on a
single machine): a consumer would take messages from the holding queue.
"""

from __future__ import annotations

from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from aio_pika.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from contracts import topology

log = structlog.get_logger()

QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}


def holding_queue(queue: topology.Queue) -> str:
    return f"{queue.name}.migrating"


async def migrate_outdated_queues(amqp_url: str) -> list[str]:
    """Rebuild every queue whose arguments differ from the topology's (and finish a move
    that was interrupted); returns the names of the queues moved."""
    connection = await aio_pika.connect(amqp_url)
    moved: list[str] = []
    async with connection:
        for queue in topology.QUEUES:
            if await _exists(connection, holding_queue(queue)):
                await _move_back(connection, queue)
                moved.append(queue.name)
            elif not await _current(connection, queue):
                await _move_out(connection, queue)
                await _move_back(connection, queue)
                moved.append(queue.name)
    for name in moved:
        log.info("broker.queue_migrated", queue=name)
    return moved


async def _declares(connection: AbstractConnection, name: str, **declare: Any) -> bool:
    """Whether RabbitMQ accepts this declare. A refusal closes the channel, so each check
    has its own."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, **declare)
        return True
    except (ChannelNotFoundEntity, ChannelPreconditionFailed):
        return False
    finally:
        if not channel.is_closed:
            await channel.close()


async def _exists(connection: AbstractConnection, name: str) -> bool:
    return await _declares(connection, name, passive=True)


async def _current(connection: AbstractConnection, queue: topology.Queue) -> bool:
    """Whether the queue has the topology's arguments (declaring it when it is absent)."""
    return await _declares(connection, queue.name, durable=True, arguments=queue.arguments)


async def _move_out(connection: AbstractConnection, queue: topology.Queue) -> None:
    """New messages to the holding queue, then the old queue's messages after them, then
    the old queue gone."""
    channel = await connection.channel(publisher_confirms=True)
    async with channel:
        exchange = await channel.declare_exchange(
            topology.EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        holding = await channel.declare_queue(holding_queue(queue), durable=True, arguments=QUORUM)
        await holding.bind(exchange, queue.routing_key)
        old = await channel.declare_queue(queue.name, passive=True)
        await old.unbind(exchange, queue.routing_key)
        await _empty_into(channel, old, holding.name)


async def _move_back(connection: AbstractConnection, queue: topology.Queue) -> None:
    """The queue made again with the topology's arguments, and the held messages in it."""
    channel = await connection.channel(publisher_confirms=True)
    async with channel:
        exchange = await channel.declare_exchange(
            topology.EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        fresh = await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)
        await fresh.bind(exchange, queue.routing_key)
        holding = await channel.declare_queue(holding_queue(queue), passive=True)
        await holding.unbind(exchange, queue.routing_key)
        await _empty_into(channel, holding, fresh.name)


async def _empty_into(channel: AbstractChannel, source: AbstractQueue, target: str) -> None:
    """Move everything out of `source` (unbound by now), then delete it. Quorum queues have no
    delete-if-empty, so emptiness is checked first, with a passive declare."""
    while True:
        await _move(channel, source, target)
        left = await channel.declare_queue(source.name, passive=True)
        if left.declaration_result.message_count == 0:
            await source.delete(if_unused=False, if_empty=False)
            return


async def _move(channel: AbstractChannel, source: AbstractQueue, target: str) -> int:
    """Every message of `source` into `target`: published (confirmed), then acknowledged."""
    count = 0
    while (message := await source.get(no_ack=False, fail=False)) is not None:
        headers = {k: v for k, v in (message.headers or {}).items() if k != "x-delivery-count"}
        await channel.default_exchange.publish(
            aio_pika.Message(
                body=message.body,
                headers=headers,
                content_type=message.content_type,
                correlation_id=message.correlation_id,
                message_id=message.message_id,
                type=message.type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=target,
            mandatory=True,
        )
        await message.ack()
        count += 1
    return count
