"""The transactional outbox: a change and the messages announcing it are stored together,
and every stored message reaches RabbitMQ, even when its writer died before publishing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest
from prometheus_client import REGISTRY

from contracts import topology
from contracts.v1 import ConvertReport, ReportStatus
from services.infra.broker import make_broker
from services.infra.documents import ReportDocument
from services.infra.outbox import Outbox, message_outbox
from services.infra.service import Resources
from tests.support import drain, eventually, report_document


@pytest.fixture
async def resources(make_resources: Callable[[str], Resources]) -> AsyncIterator[Resources]:
    resources = make_resources("render")
    await resources.start()  # indexes, topology, and the relay loop
    yield resources
    await resources.close()
    await resources.broker.stop()


async def a_report(resources: Resources, status: str = "received") -> ReportDocument:
    document = report_document(status=status)
    await resources.db.reports.insert_one(document)
    return await resources.reports.get(document["_id"])


async def test_a_status_change_is_published_with_its_next_command_and_leaves_no_row(
    resources: Resources, amqp_url: str
) -> None:
    report = await a_report(resources)
    convert = ConvertReport(report_id=report["_id"], correlation_id=report["correlation_id"])

    moved = await resources.reports.advance(report, ReportStatus.RENDERED, then=[convert])

    assert moved
    events = await eventually(lambda: drain(amqp_url, "gateway.report-status"))
    commands = await eventually(lambda: drain(amqp_url, "convert.report"))
    assert [(e["report_id"], e["status"]) for e in events] == [(report["_id"], "rendered")]
    assert [c["report_id"] for c in commands] == [report["_id"]]
    assert await message_outbox(resources.db).count_documents({}) == 0
    stored = await resources.db.reports.find_one({"_id": report["_id"]})
    assert stored is not None and stored["status"] == "rendered"


async def test_a_refused_status_change_stores_and_publishes_nothing(
    resources: Resources, amqp_url: str
) -> None:
    report = await a_report(resources, status="notified")
    convert = ConvertReport(report_id=report["_id"], correlation_id=report["correlation_id"])

    moved = await resources.reports.advance(report, ReportStatus.RENDERED, then=[convert])

    assert not moved
    await asyncio.sleep(0.5)
    assert await drain(amqp_url, "convert.report") == []
    assert await drain(amqp_url, "gateway.report-status") == []
    assert await message_outbox(resources.db).count_documents({}) == 0


async def test_a_write_that_fails_midway_leaves_neither_the_change_nor_its_message(
    resources: Resources, amqp_url: str
) -> None:
    report = await a_report(resources)

    async def half_done(session: Any) -> tuple[None, list[ConvertReport]]:
        await resources.db.reports.update_one(
            {"_id": report["_id"]}, {"$set": {"status": "rendered"}}, session=session
        )
        raise RuntimeError("the process failed before the transaction ended")

    with pytest.raises(RuntimeError):
        await resources.outbox.commit(half_done)

    stored = await resources.db.reports.find_one({"_id": report["_id"]})
    assert stored is not None and stored["status"] == "received"
    assert await message_outbox(resources.db).count_documents({}) == 0
    assert await drain(amqp_url, "convert.report") == []


async def test_a_message_its_writer_could_not_publish_is_sent_by_the_relay_once(
    resources: Resources, amqp_url: str
) -> None:
    # A writer whose broker connection is gone: its change commits, its publish fails.
    unconnected = make_broker(resources.settings)
    writer = Outbox(resources.db, unconnected, claim_seconds=0.5)
    report = await a_report(resources)
    convert = ConvertReport(report_id=report["_id"], correlation_id=report["correlation_id"])

    async def record(session: Any) -> tuple[str, list[ConvertReport]]:
        await resources.db.reports.update_one(
            {"_id": report["_id"]}, {"$set": {"status": "rendered"}}, session=session
        )
        return "stored", [convert]

    assert await writer.commit(record) == "stored"
    assert await message_outbox(resources.db).count_documents({}) == 1

    # The running service's relay loop takes the row over once the writer's claim expires.
    commands = await eventually(lambda: drain(amqp_url, "convert.report"), timeout=20)
    await asyncio.sleep(2.5)  # one more relay pass: nothing goes out twice
    commands += await drain(amqp_url, "convert.report")
    assert [c["report_id"] for c in commands] == [report["_id"]]
    assert await message_outbox(resources.db).count_documents({}) == 0


async def test_two_relays_share_the_waiting_rows_without_publishing_one_twice(
    resources: Resources, amqp_url: str
) -> None:
    unconnected = make_broker(resources.settings)
    writer = Outbox(resources.db, unconnected, claim_seconds=0)
    reports = [await a_report(resources) for _ in range(20)]

    async def record(session: Any) -> tuple[None, list[ConvertReport]]:
        commands = [
            ConvertReport(report_id=r["_id"], correlation_id=r["correlation_id"]) for r in reports
        ]
        return None, commands

    await writer.commit(record)
    first = Outbox(resources.db, resources.broker)
    second = Outbox(resources.db, resources.broker)

    sent = await asyncio.gather(first.relay(), second.relay())

    assert all(sent)  # both took a share (the service's own relay loop may take some too)
    commands = await eventually(lambda: drain(amqp_url, "convert.report"))
    await asyncio.sleep(0.5)
    commands += await drain(amqp_url, "convert.report")
    assert sorted(c["report_id"] for c in commands) == sorted(r["_id"] for r in reports)


def publish_failures(path: str) -> float:
    labels = {"path": path}
    return REGISTRY.get_sample_value("resultflow_outbox_publish_failures_total", labels) or 0.0


async def test_an_unroutable_or_refused_message_stays_pending_is_counted_and_goes_once_routed(
    resources: Resources, amqp_url: str
) -> None:
    """Scenario 5: RabbitMQ returns the mandatory publish (no queue bound) or nacks it (the
    queue refuses): the change stays committed, its message stays in the outbox, each failure
    is counted (`resultflow_outbox_publish_failures_total`, alert ResultFlowOutboxNotPublishing)
    and once the queue is back the relay delivers it, once."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete("convert.report")  # nothing bound: unroutable
        writer = Outbox(resources.db, resources.broker, claim_seconds=0.5)
        report = await a_report(resources)
        convert = ConvertReport(report_id=report["_id"], correlation_id=report["correlation_id"])

        async def record(session: Any) -> tuple[str, list[ConvertReport]]:
            await resources.db.reports.update_one(
                {"_id": report["_id"]}, {"$set": {"status": "rendered"}}, session=session
            )
            return "stored", [convert]

        writer_failures, relay_failures = publish_failures("writer"), publish_failures("relay")
        assert await writer.commit(record) == "stored"

        stored = await resources.db.reports.find_one({"_id": report["_id"]})
        assert stored is not None and stored["status"] == "rendered"
        assert await message_outbox(resources.db).count_documents({}) == 1
        assert publish_failures("writer") == writer_failures + 1
        # The service's relay tries again once the claim runs out, and fails the same way.
        await eventually(lambda: publish_failures("relay") > relay_failures, timeout=20)
        [row] = await message_outbox(resources.db).find().to_list()
        assert row["attempts"] >= 1

        # The queue is back but refuses every message (full, reject-publish): RabbitMQ nacks.
        full = await channel.declare_queue(
            "convert.report",
            durable=True,
            arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
        )
        await full.bind(topology.EXCHANGE, routing_key=ConvertReport.routing_key)
        refused = publish_failures("relay")
        await eventually(lambda: publish_failures("relay") > refused, timeout=20)
        assert await message_outbox(resources.db).count_documents({}) == 1
        assert await drain(amqp_url, "convert.report") == []
        await channel.queue_delete("convert.report")

        # Routed again (what `resultflow broker declare` does): the relay delivers it, once.
        queue = topology.queue_for(ConvertReport)
        arguments = {"x-queue-type": "quorum", **queue.arguments}
        routed = await channel.declare_queue(queue.name, durable=True, arguments=arguments)
        await routed.bind(topology.EXCHANGE, routing_key=queue.routing_key)
    commands = await eventually(lambda: drain(amqp_url, "convert.report"), timeout=20)
    await eventually(lambda: _outbox_empty(resources), timeout=10)
    await asyncio.sleep(2.5)  # one more relay pass: nothing goes out twice
    commands += await drain(amqp_url, "convert.report")
    assert [c["report_id"] for c in commands] == [report["_id"]]


async def _outbox_empty(resources: Resources) -> bool:
    return await message_outbox(resources.db).count_documents({}) == 0
