"""Opted-out numbers get no SMS, and the report says so with the date; Twilio's own opt-out
error (21610) is recorded the same way. Real RabbitMQ and MongoDB protocol, a local Twilio."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from services.infra.broker import publish
from services.infra.database import Database
from services.infra.opt_outs import Keyword, OptOuts
from services.infra.service import Resources
from services.notify.main import create_app
from tests.fake_twilio import FakeTwilio
from tests.integration.notify.test_notify_service import (
    PHONE,
    insert_report,
    notify,
    report_in,
)
from tests.support import eventually


async def test_an_opted_out_number_gets_no_sms_and_the_report_says_why_and_since_when(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    stopped = datetime(2026, 10, 5, 19, 0, tzinfo=UTC)
    await OptOuts(db).record(PHONE, Keyword.STOP, stopped, source="inbound_sms", word="STOP")
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))

    assert failed["failure_reason"] == "not sent: patient opted out (on 2026-10-05)"
    assert await db.outbox.count_documents({}) == 0
    assert await db.notifications.count_documents({}) == 0
    entry = await db.audit.find_one({"action": "sms.not_sent", "report_id": report["_id"]})
    assert entry and PHONE not in str(entry)


async def test_a_number_that_opted_back_in_is_texted(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    opt_outs = OptOuts(db)
    now = datetime(2026, 10, 5, tzinfo=UTC)
    await opt_outs.record(PHONE, Keyword.STOP, now, source="inbound_sms", word="STOP")
    await opt_outs.record(PHONE, Keyword.START, now, source="inbound_sms", word="START")
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))
    assert await db.outbox.count_documents({"to": PHONE}) == 1


async def test_twilios_opt_out_error_is_recorded_as_an_opt_out_and_shown_on_the_report(
    make_resources: Callable[[str], Resources], db: Database, twilio: FakeTwilio
) -> None:
    twilio.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))

    assert failed["failure_reason"].startswith("not sent: patient opted out (on ")
    stored = await db.sms_opt_outs.find_one({"_id": PHONE})
    assert stored and stored["opted_out"] is True and stored["source"] == "provider"
    assert twilio.messages == []
