"""SMS for corrected reports: a replaced version is never texted; the new version is texted
once, saying the report was updated when an older version had been texted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from contracts.v1 import NotifyPatient, utcnow
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from services.notify.main import create_app
from tests.support import eventually, report_document


def versions(first_status: str) -> tuple[dict[str, Any], dict[str, Any]]:
    v1 = report_document(status=first_status, pdf_file_id="0" * 24)
    v2 = report_document(
        status="converted",
        pdf_file_id="1" * 24,
        source_key=v1["source_key"],
        version=2,
        previous_id=v1["_id"],
        results=[{"test": "Glucose", "value": "6.1", "unit": "mmol/L"}],
    )
    return v1, v2


def notify(report: dict[str, Any]) -> NotifyPatient:
    return NotifyPatient(correlation_id=report["correlation_id"], report_id=report["_id"])


async def sms_to(db: Database, count: int) -> list[dict[str, Any]] | None:
    found = await db.outbox.find().to_list()
    return found if len(found) == count else None


async def test_a_superseded_version_is_never_texted(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    v1, v2 = versions("superseded")
    await db.reports.insert_many([v1, v2])
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(v1))
        await publish(resources.broker, notify(v2))
        [sms] = await eventually(lambda: sms_to(db, 1))
    assert "your report is ready" in sms["body"]
    assert (await db.reports.find_one({"_id": v1["_id"]}))["status"] == "superseded"  # type: ignore[index]
    assert await db.notifications.count_documents({"report_id": v1["_id"]}) == 0


async def test_a_correction_after_an_sms_is_texted_once_as_an_update(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    v1, v2 = versions("converted")
    await db.reports.insert_one(v1)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(v1))
        await eventually(lambda: sms_to(db, 1))
        await db.reports.update_one({"_id": v1["_id"]}, {"$set": {"status": "superseded"}})
        await db.reports.insert_one(v2)
        await publish(resources.broker, notify(v2))
        await publish(resources.broker, notify(v2))  # a duplicate: still one SMS
        first, second = await eventually(lambda: sms_to(db, 2))
        await eventually(lambda: db.reports.find_one({"_id": v2["_id"], "status": "notified"}))
    assert "report is ready" in first["body"]
    assert "your report was updated" in second["body"]
    assert await db.outbox.count_documents({}) == 2


def again(report: dict[str, Any], request_id: str) -> NotifyPatient:
    return NotifyPatient(
        correlation_id=report["correlation_id"], report_id=report["_id"], request_id=request_id
    )


async def test_a_staff_request_texts_once_with_a_new_link_however_often_it_arrives(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = report_document(status="converted", pdf_file_id="0" * 24)
    await db.reports.insert_one(report)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: sms_to(db, 1))
        first = await db.reports.find_one({"_id": report["_id"]})
        for _ in range(3):  # a double click, then a retried API call
            await publish(resources.broker, again(report, "req-resend-1"))
        await eventually(lambda: sms_to(db, 2))
        await publish(resources.broker, again(report, "req-resend-2"))
        await eventually(lambda: sms_to(db, 3))
    assert first is not None
    latest = await db.reports.find_one({"_id": report["_id"]})
    assert latest is not None and latest["status"] == "notified"
    assert latest["access"]["token_hash"] != first["access"]["token_hash"]  # old link revoked
    purposes = sorted(await db.notifications.distinct("purpose"))
    assert purposes == ["request:req-resend-1", "request:req-resend-2", "result_ready"]


async def test_a_resend_after_a_failed_sms_notifies_the_report_again(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = report_document(
        status="failed", pdf_file_id="0" * 24, failure_reason="SMS not delivered: 30003"
    )
    await db.reports.insert_one(report)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, again(report, "req-after-failure"))
        await eventually(lambda: db.reports.find_one({"_id": report["_id"], "status": "notified"}))
    assert await db.outbox.count_documents({}) == 1


async def test_a_request_for_a_report_withdrawn_meanwhile_sends_nothing(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = report_document(status="withdrawn", pdf_file_id="0" * 24)
    await db.reports.insert_one(report)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, again(report, "req-too-late"))
        await asyncio.sleep(1)
    assert await db.outbox.count_documents({}) == 0
    assert await db.notifications.count_documents({}) == 0


async def test_a_resend_whose_worker_died_mid_send_is_never_sent_again(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = report_document(status="notified", pdf_file_id="0" * 24)
    await db.reports.insert_one(report)
    long_ago = utcnow() - timedelta(hours=1)
    # The worker that took this request was killed while it talked to the provider.
    await db.notifications.insert_one(
        {
            "_id": "n-dead",
            "report_id": report["_id"],
            "version": 1,
            "purpose": "request:req-killed",
            "to": report["patient"]["phone"],
            "provider": "outbox",
            "status": "sending",
            "attempts": 1,
            "heartbeat_at": long_ago,
            "created_at": long_ago,
        }
    )
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, again(report, "req-killed"))  # the redelivery
        failed = await eventually(
            lambda: db.reports.find_one({"_id": report["_id"], "status": "failed"})
        )
    assert "outcome unknown" in failed["failure_reason"]
    assert await db.outbox.count_documents({}) == 0
    assert (await db.notifications.find_one({"_id": "n-dead"}))["status"] == "unknown"  # type: ignore[index]
