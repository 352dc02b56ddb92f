"""Messages that are not valid contracts: parked with the reason, the service goes on."""

from __future__ import annotations

from collections.abc import Callable

import aio_pika

from contracts import topology
from services.infra.broker import publish
from services.infra.service import Resources
from services.ingest.main import create_app
from tests.support import drain, eventually, lis_message


async def dead_letters(amqp_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.get_queue(queue, ensure=True)
        found = []
        while (message := await declared.get(fail=False)) is not None:
            await message.ack()
            found.append(message)
        return found


async def test_malformed_lis_message_is_parked_with_the_reason_and_the_next_one_works(
    make_resources: Callable[[str], Resources], amqp_url: str
) -> None:
    resources = make_resources("ingest")
    parked: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def both_parked() -> bool:
        parked.extend(await dead_letters(amqp_url, "ingest.lis-result.dlq"))
        return len(parked) >= 2

    async with create_app(resources):
        for body in (
            b"{not json",
            b'{"correlation_id": "c1", "message_id": "m1", "lab_id": "lab"}',
        ):
            await resources.broker.publish(
                body, exchange=topology.EXCHANGE, routing_key="ingest.lis-result.v1", persist=True
            )
        await eventually(both_parked)
        await publish(resources.broker, lis_message())
        render_requests = await eventually(lambda: drain(amqp_url, "render.report"))
    reasons = [str(m.headers["x-rejection-reason"]) for m in parked]
    assert "Invalid JSON" in reasons[0]
    assert "accession: Field required" in reasons[1]
    assert "results: Field required" in reasons[1]
    assert parked[1].body.startswith(b'{"correlation_id": "c1"')
    assert len(render_requests) == 1
