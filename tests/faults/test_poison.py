"""A poison message in every queue: each lands in its dead-letter queue with the reason, the
good messages behind it still flow, the dead-letter page lists it (its count per queue =
what waits), and a replay, from the API or from the page, puts it back in its queue (where,
still poison, it fails again and waits again for a person)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiohttp
import pytest

from contracts import topology
from devtools.demo import demo_sheet
from devtools.launcher import rabbitmq_vhost
from services.gateway.accounts_store import ApiTokens
from tests.faults.system import (
    FaultSystem,
    assert_invariants,
    fault_system,
    invariants,
    record,
    wait_settled,
)
from tests.support import browser_log_in, chromium, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

PATIENTS = 5
POISON = b'{"poison": "not a message of ours"}'


@pytest.fixture(scope="module")
async def poisoned(
    mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FaultSystem]:
    with rabbitmq_vhost() as amqp_url:
        tmp_path = tmp_path_factory.mktemp("poison")
        async with fault_system(mongodb_uri, amqp_url, tmp_path) as system:
            yield system


async def publish_poison(amqp_url: str) -> None:
    """One message that is no contract of ours into every work queue, under its routing key."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EXCHANGE)
        for queue in topology.QUEUES:
            message = aio_pika.Message(
                POISON,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=f"poison-{queue.name}",
                type=queue.routing_key,
            )
            await exchange.publish(message, routing_key=queue.routing_key, mandatory=True)


async def api(
    system: FaultSystem, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, system.base_url + "/api/v1" + path, json=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def dead(system: FaultSystem, queue: str) -> list[dict[str, Any]]:
    return await system.db.dead_letters.find({"queue": queue, "state": "dead"}).to_list()


async def test_a_poison_message_in_every_queue_is_dead_lettered_with_its_reason_and_the_rest_flows(
    poisoned: FaultSystem,
) -> None:
    system = poisoned
    started = time.monotonic()
    await publish_poison(system.amqp_url)
    batch_id = await system.upload("after-poison.xlsx", demo_sheet(PATIENTS, first_id=51000))

    # Every queue's poison is kept, with why it was refused.
    async def all_kept() -> bool:
        return await system.db.dead_letters.count_documents({}) >= len(topology.QUEUES)

    await eventually(all_kept, timeout=120, interval=0.5)
    kept_s = time.monotonic() - started
    letters = await system.db.dead_letters.find({}).to_list()
    assert sorted(letter["queue"] for letter in letters) == sorted(q.name for q in topology.QUEUES)
    for letter in letters:
        assert "Field required" in letter["reason"], letter
        assert letter["state"] == "dead"

    # The good messages behind them flowed: the sheet's patients are all texted, once.
    drained = await wait_settled(system, [batch_id], PATIENTS, timeout=180)
    figures = await invariants(system, [batch_id], PATIENTS)

    # The dead-letter queues are empty (kept in MongoDB), and the API's counts say one each.
    connection = await aio_pika.connect(system.amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in topology.QUEUES:
            dlq = await channel.declare_queue(queue.dead_letter_queue, passive=True)
            assert dlq.declaration_result.message_count == 0, queue.dead_letter_queue
    _, token = await ApiTokens(system.db).create("admin", "poison test")
    status, listed = await api(system, token, "GET", "/dead-letters")
    assert status == 200, listed
    assert listed["counts"] == {q.name: 1 for q in topology.QUEUES}

    # Replay from the API: it goes back to its queue, fails again, and waits again.
    render_letter = (await dead(system, "render.report"))[0]
    status, replayed = await api(
        system, token, "POST", f"/dead-letters/{render_letter['_id']}/replay", {}
    )
    assert status == 200, replayed
    assert replayed["state"] == "replayed"

    async def back_again() -> bool:
        return any(d["_id"] != render_letter["_id"] for d in await dead(system, "render.report"))

    await eventually(back_again, timeout=60, interval=0.5)
    record(
        "poison message in every queue",
        queues=len(topology.QUEUES),
        kept_seconds=round(kept_s, 1),
        drain_seconds=round(drained, 1),
        replayed_back_via_api=True,
        patients=PATIENTS,
        **figures,
    )
    assert_invariants(figures, PATIENTS)


async def test_a_dead_letter_is_listed_on_the_page_and_replayed_from_it(
    poisoned: FaultSystem,
) -> None:
    system = poisoned
    letter = await eventually(lambda: dead(system, "notify.patient"), timeout=120)
    letter_id = letter[0]["_id"]
    async with chromium() as browser:
        page = await browser.new_page()
        await browser_log_in(page, system.base_url)
        await page.goto(f"{system.base_url}/dead-letters?queue=notify.patient")
        row = page.locator(f"#letter-{letter_id}")
        assert "Field required" in (await row.text_content() or "")
        assert (await page.text_content("[id='count-notify.patient']") or "").strip() == "1"
        await row.get_by_role("button", name="Replay").click()
        await page.wait_for_load_state()

    async def replayed_and_back() -> bool:
        first = await system.db.dead_letters.find_one({"_id": letter_id})
        again = [d for d in await dead(system, "notify.patient") if d["_id"] != letter_id]
        return bool(first and first["state"] == "replayed" and again)

    await eventually(replayed_and_back, timeout=60, interval=0.5)
    audit = await system.db.audit.find_one({"action": "dead_letter.replayed", "object": letter_id})
    assert audit is not None
