"""The soak: many reports while a random worker is SIGKILLed every few seconds (and started
again by the supervisor, as systemd would); once the killing stops, every queue drains
within a minute, and every report ends in exactly one visible state: notified once, or (a
notify process killed while the provider had the SMS) failed with "outcome unknown", never
texted twice. No report lost, no duplicate report, PDF or SMS.

RESULTFLOW_SOAK_REPORTS (default 250, so the whole CI stays well inside its limit; issue 12
asks for 500: `RESULTFLOW_SOAK_REPORTS=500` passed twice, draining 35 s and 56 s after the
last kill) and RESULTFLOW_SOAK_KILL_EVERY (seconds) set the size.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from devtools.demo import demo_sheet
from devtools.launcher import rabbitmq_vhost
from services.gateway.accounts_store import ApiTokens
from services.notify.logic import OUTCOME_UNKNOWN_REASON, SENT_STATUSES
from tests.faults.system import FaultSystem, fault_system, invariants, record, wait_settled
from tests.support import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

# The 500 reports: ~3-3.5 min here (2 busy cores; 206 s and 177 s measured).
REPORTS = int(os.environ.get("RESULTFLOW_SOAK_REPORTS", "250"))
KILL_EVERY = float(os.environ.get("RESULTFLOW_SOAK_KILL_EVERY", "5"))
SHEET = 50  # patients per uploaded sheet
WORKERS = ("ingest-1", "render-1", "convert-1", "convert-2", "notify-1")
DRAIN_LIMIT = 60.0  # seconds from the last kill


@pytest.fixture(scope="module")
async def soaked(
    mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FaultSystem]:
    with rabbitmq_vhost() as amqp_url:
        tmp_path = tmp_path_factory.mktemp("soak")
        async with fault_system(mongodb_uri, amqp_url, tmp_path) as system:
            yield system


async def finished(system: FaultSystem, batch_ids: list[str]) -> int:
    return await system.db.reports.count_documents(
        {"batch_id": {"$in": batch_ids}, "status": {"$in": ["notified", "delivered", "failed"]}}
    )


async def dead_lettered(system: FaultSystem) -> set[str]:
    """Reports whose message waits on the dead-letter page (a visible end state too)."""
    letters = system.db.dead_letters.find({"state": "dead"}, {"report_id": 1})
    return {str(letter["report_id"]) async for letter in letters if letter.get("report_id")}


async def quiet(system: FaultSystem, batch_ids: list[str]) -> bool:
    """No message waiting anywhere, and every report in a final state or dead-lettered."""
    if await system.queue_depth() != 0 or await system.db.message_outbox.count_documents({}):
        return False
    if await system.db.batches.count_documents(
        {"_id": {"$in": batch_ids}, "status": "ingested"}
    ) < len(batch_ids):
        return False
    open_ids = await system.db.reports.distinct(
        "_id", {"batch_id": {"$in": batch_ids}, "status": {"$nin": ["notified", "failed"]}}
    )
    return len(open_ids) + await finished(system, batch_ids) == REPORTS and set(open_ids) <= (
        await dead_lettered(system)
    )


async def texted_not_notified(system: FaultSystem, batch_ids: list[str]) -> int:
    """Finding A (issue 12): reports whose SMS went out that did not move on to notified."""
    open_ids = await system.db.reports.distinct(
        "_id", {"batch_id": {"$in": batch_ids}, "status": {"$nin": ["notified", "failed"]}}
    )
    sent = [status.value for status in SENT_STATUSES]
    return await system.db.notifications.count_documents(
        {"report_id": {"$in": open_ids}, "status": {"$in": sent}}
    )


async def replay_stuck(system: FaultSystem, batch_ids: list[str]) -> int:
    """What staff do on the dead-letter page: replay each one whose report is not done."""
    _, token = await ApiTokens(system.db).create("admin", "soak")
    open_ids = await system.db.reports.distinct(
        "_id", {"batch_id": {"$in": batch_ids}, "status": {"$nin": ["notified", "failed"]}}
    )
    letters = await system.db.dead_letters.find(
        {"state": "dead", "report_id": {"$in": open_ids}}, {"_id": 1}
    ).to_list()
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        for letter in letters:
            url = f"{system.base_url}/api/v1/dead-letters/{letter['_id']}/replay"
            async with http.post(url, json={}, headers=headers) as response:
                assert response.status == 200, await response.text()
    return len(letters)


@pytest.mark.timeout(900)
async def test_a_random_worker_killed_every_few_seconds_loses_nothing_and_repeats_nothing(
    soaked: FaultSystem,
) -> None:
    system, chance = soaked, random.Random()  # which worker dies: no secret
    started = time.monotonic()
    batch_ids = [
        await system.upload(
            f"soak-{n}.xlsx", demo_sheet(min(SHEET, REPORTS - n), first_id=60000 + n)
        )
        for n in range(0, REPORTS, SHEET)
    ]
    kills: list[str] = []
    last_kill = time.monotonic()
    # Kill until nine in ten reports are through (so the kills land all along the way).
    while await finished(system, batch_ids) + len(await dead_lettered(system)) < REPORTS * 0.9:
        assert time.monotonic() - started < 600, f"{len(kills)} kills, still not through"
        await asyncio.sleep(KILL_EVERY)
        victim = chance.choice(WORKERS)
        if system.stack.processes[victim].poll() is None:
            await asyncio.to_thread(system.stack.kill, victim)
            kills.append(victim)
            last_kill = time.monotonic()
    await eventually(lambda: quiet(system, batch_ids), timeout=DRAIN_LIMIT + 120, interval=0.5)
    since_last_kill = time.monotonic() - last_kill
    at_rest = await invariants(system, batch_ids, REPORTS)
    stuck = REPORTS - await finished(system, batch_ids)
    texted_but_stuck = await texted_not_notified(system, batch_ids)

    # Staff replay the dead-lettered ones: they end notified, and nobody is texted twice.
    replayed = await replay_stuck(system, batch_ids)
    drained = await wait_settled(system, batch_ids, REPORTS, timeout=120)
    await asyncio.sleep(3)  # a duplicate PDF or SMS would show up now
    figures = await invariants(system, batch_ids, REPORTS)
    reports = await system.db.reports.find(
        {"batch_id": {"$in": batch_ids}}, {"status": 1, "failure_reason": 1}
    ).to_list()
    failed = [r for r in reports if r["status"] == "failed"]
    record(
        "soak: random worker SIGKILLed",
        kill_every_s=KILL_EVERY,
        kills=len(kills),
        killed={name: kills.count(name) for name in WORKERS},
        drained_after_last_kill_s=round(since_last_kill, 1),
        dead_lettered_at_rest=stuck,
        texted_not_notified_at_rest=texted_but_stuck,
        states_at_rest=at_rest["states"],
        replayed=replayed,
        settled_after_replay_s=round(drained, 1),
        total_s=round(time.monotonic() - started, 1),
        patients=REPORTS,
        **figures,
    )
    assert kills, "no worker was killed: the soak proved nothing"
    # A report whose SMS went out moves on by itself, whatever kill struck its status change.
    assert texted_but_stuck == 0, at_rest
    assert since_last_kill <= DRAIN_LIMIT, figures
    assert figures["reports"] == REPORTS, figures
    assert figures["lost"] == 0, figures
    assert figures["duplicate_reports"] == 0, figures
    assert figures["duplicate_pdfs"] == 0, figures
    assert figures["missing_pdfs"] == 0, figures
    assert figures["duplicate_sms"] == 0, figures
    assert set(figures["states"]) <= {"notified", "failed"}, figures
    # A report fails only where notify died with the SMS at the provider: flagged, not resent.
    assert all(r["failure_reason"] == OUTCOME_UNKNOWN_REASON for r in failed), failed[:3]
    assert figures["sms"] >= figures["states"].get("notified", 0), figures
