"""Quiet hours in notify against real MongoDB protocol and a local Twilio: no SMS during
them, held SMS go out once they end, longest waiting first, once whatever the replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from contracts.v1 import NotifyPatient, ReportStatus, utcnow
from services.infra.database import Database
from services.infra.report_status import stuck_query
from services.infra.service import Resources
from services.infra.settings import Settings
from services.notify.handlers import NotifyHandlers
from services.notify.main import create_app
from services.notify.provider_setup import make_provider
from services.notify.quiet_scheduler import QuietHoursScheduler
from tests.fake_twilio import FakeTwilio
from tests.support import report_document


@pytest.fixture
def twilio(twilio: FakeTwilio, settings: Settings) -> FakeTwilio:
    """Twilio, in quiet hours from an hour ago to an hour from now, on the lab's clock."""
    settings.time_zone = "Europe/London"
    zone = ZoneInfo(settings.time_zone)
    now = utcnow()
    start, end = (
        (now - timedelta(hours=1)).astimezone(zone),
        (now + timedelta(hours=1)).astimezone(zone),
    )
    settings.quiet_hours = f"{start:%H:%M}-{end:%H:%M}"
    return twilio


Replica = Callable[[], Awaitable[tuple[NotifyHandlers, QuietHoursScheduler]]]


@pytest.fixture
async def notify_replica(
    make_resources: Callable[[str], Resources], twilio: FakeTwilio
) -> AsyncIterator[Replica]:
    async with contextlib.AsyncExitStack() as running:

        async def make() -> tuple[NotifyHandlers, QuietHoursScheduler]:
            resources = make_resources("notify")
            await running.enter_async_context(create_app(resources))  # declares, connects
            handlers = NotifyHandlers(resources, make_provider(resources.settings, resources.db))
            return handlers, QuietHoursScheduler(resources, handlers)

        yield make


async def converted(db: Database, phone: str, **fields: Any) -> dict[str, Any]:
    report = report_document(status="converted", pdf_file_id="0" * 24, patient={"phone": phone})
    report.update(fields)
    await db.reports.insert_one(report)
    return report


def notify(report: dict[str, Any], request_id: str | None = None) -> NotifyPatient:
    return NotifyPatient(
        correlation_id=report["correlation_id"], report_id=report["_id"], request_id=request_id
    )


async def test_sms_due_in_quiet_hours_wait_and_go_out_after_them_in_order(
    notify_replica: Replica,
    twilio: FakeTwilio,
    db: Database,
) -> None:
    handlers, scheduler = await notify_replica()
    phones = [f"+44770090010{i}" for i in range(3)]
    reports = [await converted(db, phone) for phone in phones]
    for report in reports:
        await handlers.notify_patient(notify(report))
        await asyncio.sleep(0.01)  # distinct "waiting since" times
    await handlers.notify_patient(notify(reports[0]))  # a redelivery keeps its place

    assert twilio.messages == []
    held = await db.reports.find({"sms_due": {"$exists": True}}).to_list()
    assert len(held) == 3
    assert all(r["status"] == ReportStatus.CONVERTED.value for r in held)
    due = held[0]["sms_due"]["at"]
    assert due > utcnow()
    entry = await db.audit.find_one({"action": "sms.deferred", "report_id": reports[0]["_id"]})
    assert entry is not None and phones[0] not in str(entry)
    # Held by design, not stuck: staff are not asked to retry them.
    assert await db.reports.count_documents(stuck_query(utcnow() + timedelta(hours=1))) == 0

    assert await scheduler.tick(utcnow()) == 0  # still quiet
    assert twilio.messages == []

    after = due + timedelta(seconds=1)
    _, replica = await notify_replica()
    sent = await asyncio.gather(scheduler.tick(after), replica.tick(after))
    assert sum(sent) == 3
    assert [m["to"] for m in twilio.messages] == phones  # in the order they were held
    for report in reports:
        stored = await db.reports.find_one({"_id": report["_id"]})
        assert stored is not None
        assert stored["status"] == ReportStatus.NOTIFIED.value
        assert "sms_due" not in stored
    assert await scheduler.tick(after) == 0  # nothing twice


async def test_a_staff_request_to_text_again_waits_for_quiet_hours_too(
    notify_replica: Replica,
    twilio: FakeTwilio,
    db: Database,
) -> None:
    handlers, scheduler = await notify_replica()
    report = await converted(db, "+447700900200", status=ReportStatus.NOTIFIED.value)
    await handlers.notify_patient(notify(report, request_id="r1"))
    assert twilio.messages == []
    stored = await db.reports.find_one({"_id": report["_id"]})
    assert stored is not None and stored["sms_due"]["requests"] == ["r1"]

    assert await scheduler.tick(stored["sms_due"]["at"] + timedelta(seconds=1)) == 1
    [message] = twilio.messages
    assert message["to"] == "+447700900200"
    assert await db.notifications.count_documents({"purpose": "request:r1"}) == 1
