"""The broker every service uses, built from `contracts.topology`, and the one way to publish."""

from __future__ import annotations

import asyncio

from aio_pika.exceptions import ChannelNotFoundEntity
from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.schemas import QueueType

from contracts import topology
from contracts.v1 import Message
from services.infra.queue_migration import migrate_outdated_queues
from services.infra.settings import Settings

EXCHANGE = RabbitExchange(
    topology.EXCHANGE, type=ExchangeType(topology.EXCHANGE_TYPE), durable=True
)
DEAD_LETTER_EXCHANGE = RabbitExchange(
    topology.DEAD_LETTER_EXCHANGE, type=ExchangeType(topology.EXCHANGE_TYPE), durable=True
)


def make_broker(settings: Settings, prefetch: int | None = None) -> RabbitBroker:
    # Confirmed publishes that raise when a mandatory message has no queue to go to.
    channel = Channel(
        prefetch_count=prefetch or settings.prefetch,
        publisher_confirms=True,
        on_return_raises=True,
    )
    return RabbitBroker(settings.amqp_url, default_channel=channel, logger=None)


def rabbit_queue(queue: topology.Queue, declare: bool = True) -> RabbitQueue:
    """`declare=False`: only check that it exists (a passive declare, which needs no broker
    permission) and bind nothing; the setup job declared and bound it."""
    return RabbitQueue(  # type: ignore[call-overload]
        queue.name,
        queue_type=QueueType.QUORUM,
        durable=True,
        routing_key=queue.routing_key,
        arguments=queue.arguments,
        declare=declare,
    )


async def declare_topology(broker: RabbitBroker, amqp_url: str | None = None) -> None:
    """Declare every exchange, queue, dead-letter queue and binding (idempotent); with
    `amqp_url`, first rebuild a queue declared with older arguments (`queue_migration`).

    Every service declares all of it, so a publish never races the consumer's start-up.
    """
    if amqp_url is not None:
        await migrate_outdated_queues(amqp_url)
    exchange = await broker.declare_exchange(EXCHANGE)
    dead_letters = await broker.declare_exchange(DEAD_LETTER_EXCHANGE)
    for queue in topology.QUEUES:
        declared = await broker.declare_queue(rabbit_queue(queue))
        await declared.bind(exchange, routing_key=queue.routing_key)
        dlq = await broker.declare_queue(
            RabbitQueue(  # type: ignore[call-overload]
                queue.dead_letter_queue,
                queue_type=QueueType.QUORUM,
                durable=True,
                arguments=topology.DEAD_LETTER_QUEUE_ARGUMENTS,
            )
        )
        await dlq.bind(dead_letters, routing_key=queue.dead_letter_queue)


# What a person sees when RabbitMQ refuses new work (a memory or disk alarm).
NOT_ACCEPTING_WORK = (
    "The message system is not accepting work right now; try again in a few minutes."
)


def publishing_blocked(broker: RabbitBroker) -> bool:
    """Whether RabbitMQ has blocked this process's connection (`connection.blocked`: a memory
    or disk alarm); a publish would then wait until the alarm clears. aiormq keeps the state
    only in a private event, read here and nowhere else; False when it cannot be read."""
    connection = getattr(broker, "_connection", None)
    amqp = getattr(getattr(connection, "transport", None), "connection", None)
    unblocked = getattr(amqp, "_Connection__connection_unblocked", None)
    return isinstance(unblocked, asyncio.Event) and not unblocked.is_set()


class NotAcceptingWork(RuntimeError):
    """RabbitMQ refuses new work (an alarm): nothing was stored; try again later (503)."""


def ensure_accepting_work(broker: RabbitBroker) -> None:
    if publishing_blocked(broker):
        raise NotAcceptingWork(NOT_ACCEPTING_WORK)


# What the gateway waits for a publish before leaving the message to the outbox relay.
PUBLISH_WAIT_SECONDS = 5.0


class TopologyMissingError(RuntimeError):
    pass


async def check_topology(broker: RabbitBroker) -> None:
    """Check, with passive declares, that every exchange and queue exists: what a service
    whose broker user may not configure does at start (`RESULTFLOW_SETUP_ON_START=false`)."""
    try:
        for exchange in (EXCHANGE, DEAD_LETTER_EXCHANGE):
            await broker.declare_exchange(
                RabbitExchange(exchange.name, type=exchange.type, durable=True, declare=False)
            )
        for queue in topology.QUEUES:
            for name in (queue.name, queue.dead_letter_queue):
                await broker.declare_queue(RabbitQueue(name, durable=True, declare=False))
    except ChannelNotFoundEntity as error:
        raise TopologyMissingError(
            f"the RabbitMQ topology is not declared ({error}); run `resultflow broker declare`"
        ) from None


async def publish(broker: RabbitBroker, message: Message) -> None:
    """Publish persistent, confirmed and mandatory: returns only once RabbitMQ holds it."""
    await broker.publish(
        message.model_dump_json(),
        exchange=EXCHANGE,
        routing_key=message.routing_key,
        persist=True,
        mandatory=True,
        message_type=message.routing_key,
        correlation_id=message.correlation_id,
        content_type="application/json",
    )
