"""Queues declared before at-least-once dead-lettering are rebuilt with it, keeping every
message; an interrupted rebuild is finished by the next run. Against the real RabbitMQ."""

from __future__ import annotations

import json
import subprocess
from urllib.parse import urlsplit

import aio_pika

from contracts import topology
from contracts.v1 import RenderReport
from services.infra.broker import declare_topology, make_broker
from services.infra.queue_migration import QUORUM, holding_queue, migrate_outdated_queues
from services.infra.settings import Settings

RENDER = topology.queue_for(RenderReport)
OLD_ARGUMENTS = {
    key: value
    for key, value in RENDER.arguments.items()
    if key not in ("x-dead-letter-strategy", "x-overflow")
}


async def queue_state(amqp_url: str, name: str) -> tuple[dict[str, object], int]:
    """A queue's arguments (as RabbitMQ lists them) and how many messages it holds."""
    vhost = urlsplit(amqp_url).path.lstrip("/")
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--formatter", "json",
         "name", "arguments"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    row = next(row for row in json.loads(listed) if row["name"] == name)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        count = queue.declaration_result.message_count or 0
    return {key: value for key, _, value in row["arguments"]}, count


async def old_style_queue_with(amqp_url: str, messages: int, name: str = RENDER.name) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            topology.EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        arguments = OLD_ARGUMENTS if name == RENDER.name else QUORUM
        queue = await channel.declare_queue(name, durable=True, arguments=arguments)
        if name == RENDER.name:
            await queue.bind(exchange, RENDER.routing_key)
        for n in range(messages):
            await channel.default_exchange.publish(
                aio_pika.Message(json.dumps({"n": n}).encode(), message_id=f"m{n}"),
                routing_key=name,
            )


async def test_an_old_queue_is_rebuilt_with_at_least_once_dead_lettering_and_keeps_its_messages(
    amqp_url: str, settings: Settings, empty_queues: None
) -> None:
    await old_style_queue_with(amqp_url, 50)
    arguments, count = await queue_state(amqp_url, RENDER.name)
    assert "x-dead-letter-strategy" not in arguments and count == 50

    broker = make_broker(settings)
    await broker.connect()
    try:
        await declare_topology(broker, amqp_url)  # what every start and `broker declare` do
    finally:
        await broker.stop()

    arguments, count = await queue_state(amqp_url, RENDER.name)
    assert arguments["x-dead-letter-strategy"] == "at-least-once"
    assert arguments["x-overflow"] == "reject-publish"
    assert count == 50
    assert await migrate_outdated_queues(amqp_url) == []  # nothing left to do
    # Still bound: a publish under its routing key reaches it.
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EXCHANGE)
        await exchange.publish(aio_pika.Message(b"{}"), RENDER.routing_key, mandatory=True)
        queue = await channel.get_queue(RENDER.name)
        bodies = set()
        while (message := await queue.get(fail=False)) is not None:
            bodies.add(message.body)
            await message.ack()
    assert len(bodies) == 51 and {json.dumps({"n": n}).encode() for n in range(50)} <= bodies


async def test_a_rebuild_interrupted_after_the_old_queue_went_is_finished_next_time(
    amqp_url: str, empty_queues: None
) -> None:
    # A crash left the messages in the holding queue and no render queue at all.
    await old_style_queue_with(amqp_url, 7, name=holding_queue(RENDER))
    assert await migrate_outdated_queues(amqp_url) == ["render.report"]
    arguments, count = await queue_state(amqp_url, RENDER.name)
    assert arguments["x-dead-letter-strategy"] == "at-least-once" and count == 7
    names = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", urlsplit(amqp_url).path.lstrip("/"), "name"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert holding_queue(RENDER) not in names
