"""The broker's least privilege, against the real local RabbitMQ: a throwaway virtual host,
the topology declared by its administrator (guest), and one user per principal with exactly
the permissions `broker_access` computes, granted by `rabbitmqctl` as `resultflow broker
grant` does. RabbitMQ itself refuses what a principal may not do."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import aio_pika
import aiohttp
import pytest
from aiormq.exceptions import ChannelAccessRefused

from contracts import topology
from services.infra import broker_access
from services.infra.broker import (
    EXCHANGE,
    check_topology,
    declare_topology,
    make_broker,
    rabbit_queue,
)
from services.infra.broker_admin import BrokerAdminError, ManagementApi, Rabbitmqctl, grant
from services.infra.database import Database, connect
from services.infra.service import Resources
from services.infra.settings import Settings
from services.ingest.main import create_app
from tests.support import drain, eventually, lis_message, rabbitmq_vhost

BROKER = "127.0.0.1:5672"


@dataclass(frozen=True)
class Node:
    admin_url: str  # guest: declares the topology, reads what arrived
    urls: dict[str, str]  # principal -> amqp URL of its own user


@pytest.fixture(scope="module")
async def node() -> AsyncIterator[Node]:
    prefix = f"rf-test-{uuid.uuid4().hex[:10]}-"  # users are per node, not per vhost
    rabbitmqctl = Rabbitmqctl()
    passwords = {p: uuid.uuid4().hex for p in broker_access.principals()}
    with rabbitmq_vhost() as admin_url:
        vhost = admin_url.rsplit("/", 1)[1]
        try:
            broker = make_broker(Settings(AMQP_URL=admin_url))
            await broker.connect()
            await declare_topology(broker)
            await broker.stop()
            users = await grant(rabbitmqctl, vhost, passwords, prefix)
            assert len(users) == len(broker_access.principals())
            urls = {
                p: f"amqp://{broker_access.username(p, prefix)}:{passwords[p]}@{BROKER}/{vhost}"
                for p in broker_access.principals()
            }
            yield Node(admin_url, urls)
        finally:
            for principal in broker_access.principals():
                with contextlib.suppress(BrokerAdminError):
                    await rabbitmqctl.delete_user(broker_access.username(principal, prefix))


async def publish_as(url: str, routing_key: str, body: bytes = b"{}") -> None:
    """Publish as an outside system would (aio-pika, confirms on): returns once RabbitMQ
    confirmed it, raises when RabbitMQ refused it."""
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EXCHANGE, ensure=False)
        await exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=routing_key,
            timeout=10,
        )


async def consume_from(url: str, queue: str) -> None:
    """Start (and stop) a consumer on `queue`; raises when RabbitMQ refuses it."""
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        declared = await channel.get_queue(queue, ensure=False)
        tag = await declared.consume(_leave_it, timeout=10)
        await declared.cancel(tag)


async def _leave_it(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    await message.nack(requeue=True)


async def test_the_lis_user_publishing_an_sms_receipt_is_refused_by_rabbitmq(node: Node) -> None:
    receipt = json.dumps({"provider": "twilio", "status": "delivered"}).encode()
    with pytest.raises(ChannelAccessRefused, match=r"ACCESS_REFUSED.*topic .notify.sms-receipt.v1"):
        await publish_as(node.urls["lis"], "notify.sms-receipt.v1", receipt)
    assert await drain(node.admin_url, "notify.sms-receipt") == []


async def test_the_lis_user_publishing_its_result_is_accepted(node: Node) -> None:
    result = lis_message(message_id="LIS-ACCESS-1")
    await publish_as(node.urls["lis"], result.routing_key, result.model_dump_json().encode())
    [arrived] = await drain(node.admin_url, "ingest.lis-result")
    assert arrived["message_id"] == "LIS-ACCESS-1"


@pytest.mark.parametrize(
    "routing_key",
    [
        "ingest.batch.v1",  # names a stored file: the gateway's, after an upload
        "render.report.v1",
        "convert.report.v1",
        "notify.patient.v1",  # would text a patient
        "report.status-changed.v1",  # would mark a report delivered on the dashboard
        "ingest.lis-result",  # not a versioned LIS key
    ],
)
async def test_the_lis_user_may_publish_no_command_between_services(
    node: Node, routing_key: str
) -> None:
    with pytest.raises(ChannelAccessRefused):
        await publish_as(node.urls["lis"], routing_key)


async def test_the_lis_user_may_neither_read_its_queue_nor_declare_one(node: Node) -> None:
    with pytest.raises(ChannelAccessRefused):
        await consume_from(node.urls["lis"], "ingest.lis-result")
    connection = await aio_pika.connect(node.urls["lis"], timeout=10)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(ChannelAccessRefused):
            await channel.declare_queue("lis.eavesdrop", exclusive=True)


async def test_a_service_consuming_from_a_queue_it_does_not_own_is_refused(node: Node) -> None:
    with pytest.raises(ChannelAccessRefused):
        await consume_from(node.urls["render"], "notify.patient")
    with pytest.raises(ChannelAccessRefused):
        await consume_from(node.urls["render"], "render.report.dlq")
    await consume_from(node.urls["render"], "render.report")


async def test_a_service_publishing_another_services_message_is_refused(node: Node) -> None:
    with pytest.raises(ChannelAccessRefused):  # only the gateway takes SMS receipts
        await publish_as(node.urls["notify"], "notify.sms-receipt.v1")
    with pytest.raises(ChannelAccessRefused):  # render may not skip to "ready to text"
        await publish_as(node.urls["render"], "notify.patient.v1")


@pytest.mark.parametrize("service", [p for p in broker_access.principals() if p != "lis"])
async def test_every_service_starts_and_publishes_as_its_own_user(node: Node, service: str) -> None:
    """What the service's code does at start without configure rights (a passive check of
    the topology, its consumers), then every publish it makes, confirmed."""
    settings = Settings(AMQP_URL=node.urls[service], setup_on_start=False)
    broker = make_broker(settings)
    for queue in topology.QUEUES:
        if queue.consumer == service:
            broker.subscriber(rabbit_queue(queue, declare=False), EXCHANGE)(_ignore)
    await broker.connect()
    try:
        await check_topology(broker)
        await broker.start()
        for queue in topology.QUEUES:
            if service in queue.published_by:
                await broker.publish(
                    b"{}", exchange=EXCHANGE, routing_key=queue.routing_key, mandatory=True
                )
            if queue.consumer == service:  # a message that is not a contract, parked
                await broker.publish(
                    b"{}",
                    exchange=topology.DEAD_LETTER_EXCHANGE,
                    routing_key=queue.dead_letter_queue,
                    mandatory=True,
                )
    finally:
        await broker.stop()


async def _ignore(body: bytes) -> None:
    return None


async def test_ingest_as_its_own_user_turns_the_lis_users_result_into_a_render_request(
    node: Node, settings: Settings, db: Database
) -> None:
    restricted = settings.model_copy(
        update={"amqp_url": node.urls["ingest"], "setup_on_start": False}
    )
    client, database = connect(restricted)
    resources = Resources(restricted, make_broker(restricted), client, database)
    result = lis_message(message_id="LIS-ACCESS-2", accession="ACC-ACCESS-2")
    async with create_app(resources):
        await publish_as(node.urls["lis"], result.routing_key, result.model_dump_json().encode())
        [render] = await eventually(lambda: drain(node.admin_url, "render.report"))
    [report] = await db.reports.find({"source.message_id": "LIS-ACCESS-2"}).to_list()
    assert render["report_id"] == report["_id"]


async def test_the_management_api_grants_what_rabbitmqctl_grants() -> None:
    """compose's setup job grants through the management API: the same users, the same
    permissions, read back from the node (scripts/setup.sh enables the plugin locally)."""
    url = os.environ.get("TEST_RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672").rstrip("/")
    user = os.environ.get("TEST_RABBITMQ_MANAGEMENT_USER", "guest")
    password = os.environ.get("TEST_RABBITMQ_MANAGEMENT_PASSWORD", "guest")
    run = uuid.uuid4().hex[:10]
    vhost, prefix = f"resultflow-access-{run}", f"rf-test-{run}-"
    api = ManagementApi(url, user, password)
    passwords = {p: uuid.uuid4().hex for p in broker_access.principals()}
    authorization = {"Authorization": aiohttp.encode_basic_auth(user, password)}
    async with aiohttp.ClientSession(headers=authorization) as http:
        try:
            await grant(api, vhost, passwords, prefix)
            for expected in broker_access.all_permissions():
                name = broker_access.username(expected.principal, prefix)
                where = f"{quote(vhost, safe='')}/{quote(name, safe='')}"
                async with http.get(f"{url}/api/permissions/{where}") as response:
                    granted = await response.json()
                assert (granted["configure"], granted["write"], granted["read"]) == (
                    expected.configure,
                    expected.write,
                    expected.read,
                )
                async with http.get(f"{url}/api/topic-permissions/{where}") as response:
                    topics = await response.json()
                assert sorted((t["exchange"], t["write"], t["read"]) for t in topics) == sorted(
                    (t.exchange, t.write, t.read) for t in expected.topics
                )
        finally:
            for principal in broker_access.principals():
                with contextlib.suppress(BrokerAdminError):
                    await api.delete_user(broker_access.username(principal, prefix))
            await http.delete(f"{url}/api/vhosts/{quote(vhost, safe='')}")
