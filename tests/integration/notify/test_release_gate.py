"""The release gate and the release scheduler in notify: nothing incomplete, critical or held
goes out by SMS; held reports go out by themselves when their time is up, once, whichever
replica claims them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from contracts.v1 import NotifyPatient, ReportStatus, utcnow
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.release_rules import ReleaseRules, ReleaseRuleStore
from services.infra.service import Resources
from services.infra.settings import Settings
from services.notify.main import create_app
from services.notify.scheduler import ReleaseScheduler
from tests.support import drain, eventually, report_document


async def converted(db: Database, **fields: Any) -> dict[str, Any]:
    report = report_document(status="converted", pdf_file_id="0" * 24, **fields)
    await db.reports.insert_one(report)
    return report


def notify(report: dict[str, Any]) -> NotifyPatient:
    return NotifyPatient(correlation_id=report["correlation_id"], report_id=report["_id"])


async def in_status(db: Database, report_id: str, status: ReportStatus) -> dict[str, Any] | None:
    found = await db.reports.find_one({"_id": report_id, "status": status.value})
    return found


async def test_an_incomplete_report_waits_for_a_person_and_no_sms_is_sent(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await converted(
        db, rejected_rows=[{"row": 7, "reason": "Flag 'A' is not one of H, L, HH, LL or empty"}]
    )
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        waiting = await eventually(
            lambda: in_status(db, report["_id"], ReportStatus.NEEDS_ATTENTION)
        )
    assert waiting["history"][-1]["reason"] == (
        "incomplete: sheet row 7 of this patient could not be used"
    )
    assert "access" not in waiting
    assert await db.outbox.count_documents({}) == 0


async def test_a_critical_value_is_held_for_review_and_not_texted(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await converted(
        db, results=[{"test": "Potassium", "value": "6.9", "unit": "mmol/L", "flag": "HH"}]
    )
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        held = await eventually(lambda: in_status(db, report["_id"], ReportStatus.HELD))
        await asyncio.sleep(0.5)  # the scheduler has looked at least once
    assert held["hold"]["action"] == "review" and held["hold"]["until"] is None
    assert held["hold"]["reason"] == "Potassium 6.9 (HH): critical value, phone the patient first"
    assert await db.outbox.count_documents({}) == 0
    assert await in_status(db, report["_id"], ReportStatus.HELD)


async def test_a_timed_hold_goes_out_by_itself_once_its_time_is_up(
    settings: Settings, make_resources: Callable[[str], Resources], db: Database
) -> None:
    settings.release_poll_seconds = 0.2
    rules = ReleaseRules.model_validate(
        {"rules": [{"test": "Glucose", "action": "hold", "hours": 2, "note": "GP first"}]}
    )
    await ReleaseRuleStore(db).put(settings.lab_id, rules, "admin")
    report = await converted(db, results=[{"test": "Glucose", "value": "5.4"}])
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        held = await eventually(lambda: in_status(db, report["_id"], ReportStatus.HELD))
        assert held["hold"]["until"] > utcnow() + timedelta(minutes=119)
        assert held["hold"]["reason"] == "Glucose 5.4: GP first"
        # Two hours later, as far as the report is concerned.
        await db.reports.update_one(
            {"_id": report["_id"]}, {"$set": {"hold.until": utcnow() - timedelta(seconds=1)}}
        )
        await eventually(lambda: in_status(db, report["_id"], ReportStatus.NOTIFIED))
        await asyncio.sleep(1)  # a few more scheduler passes: nothing more may happen
    notified = await db.reports.find_one({"_id": report["_id"]})
    assert notified is not None
    assert [h["status"] for h in notified["history"]].count("released") == 1
    assert [h["reason"] for h in notified["history"] if h["status"] == "released"] == [
        "the hold's time is up"
    ]
    assert await db.outbox.count_documents({}) == 1


async def two_schedulers(
    make_resources: Callable[[str], Resources],
) -> tuple[list[Resources], list[ReleaseScheduler]]:
    replicas = [make_resources("notify") for _ in range(2)]
    for resources in replicas:
        await resources.start()
    return replicas, [ReleaseScheduler(resources, every_seconds=60) for resources in replicas]


async def test_two_scheduler_replicas_release_each_due_report_exactly_once(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    due = utcnow() - timedelta(minutes=1)
    reports = [
        report_document(
            status="held",
            pdf_file_id="0" * 24,
            hold={"action": "hold", "until": due, "reason": "r", "rule": 0, "at": due},
        )
        for _ in range(12)
    ]
    await db.reports.insert_many(reports)
    replicas, schedulers = await two_schedulers(make_resources)
    try:
        acted = await asyncio.gather(*(s.tick() for s in schedulers))
    finally:
        for resources in replicas:
            await resources.broker.stop()
            await resources.close()
    assert sum(acted) == 12
    released = await db.reports.find({"status": "released"}).to_list()
    assert len(released) == 12
    assert all([h["status"] for h in r["history"]].count("released") == 1 for r in released)
    commands = await drain(amqp_url, "notify.patient")
    assert sorted(c["report_id"] for c in commands) == sorted(r["_id"] for r in reports)


async def test_a_release_whose_message_was_lost_is_sent_again_once(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    stale = utcnow() - timedelta(minutes=5)
    report = report_document(status="released", pdf_file_id="0" * 24, updated_at=stale)
    fresh = report_document(status="released", pdf_file_id="0" * 24)
    await db.reports.insert_many([report, fresh])
    replicas, schedulers = await two_schedulers(make_resources)
    try:
        first = await asyncio.gather(*(s.tick() for s in schedulers))
        again = await asyncio.gather(*(s.tick() for s in schedulers))
    finally:
        for resources in replicas:
            await resources.broker.stop()
            await resources.close()
    assert (sum(first), sum(again)) == (1, 0)
    assert [c["report_id"] for c in await drain(amqp_url, "notify.patient")] == [report["_id"]]
