"""The reminder scheduler against real MongoDB protocol and a local Twilio: one reminder per
report version for a link still unopened shortly before it expires, never to opted-out
numbers, safe with replicas."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from contracts.v1 import utcnow
from services.infra.database import Database
from services.infra.opt_outs import Keyword, OptOuts
from services.infra.service import Resources
from services.infra.settings import Settings
from services.infra.tokens import new_token, token_hash
from services.notify.provider_setup import make_provider
from services.notify.reminders import ReminderScheduler
from tests.fake_twilio import FakeTwilio
from tests.support import report_document

PHONE = "+447700900123"
LINK = re.compile(r"/r/([A-Za-z0-9_-]{43})")


@pytest.fixture
def twilio(twilio: FakeTwilio, settings: Settings) -> FakeTwilio:
    """Twilio, with reminders three days before a link expires."""
    settings.reminder_days_before_expiry = 3
    return twilio


@pytest.fixture
def scheduler(
    make_resources: Callable[[str], Resources], twilio: FakeTwilio
) -> Callable[[], ReminderScheduler]:
    def make() -> ReminderScheduler:
        resources = make_resources("notify")
        return ReminderScheduler(resources, make_provider(resources.settings, resources.db))

    return make


async def texted_report(
    db: Database, *, expires_in: timedelta, status: str = "notified", **access: Any
) -> dict[str, Any]:
    report = report_document(
        status=status,
        patient={"phone": PHONE},
        access={
            "token_hash": token_hash(new_token()),
            "expires_at": utcnow() + expires_in,
            "failed_attempts": 0,
            "locked": False,
            **access,
        },
    )
    await db.reports.insert_one(report)
    return report


async def test_an_unopened_link_close_to_expiry_gets_one_reminder_whose_link_opens_the_report(
    scheduler: Callable[[], ReminderScheduler], twilio: FakeTwilio, db: Database
) -> None:
    report = await texted_report(db, expires_in=timedelta(days=2))
    reminders = scheduler()
    assert await reminders.tick() == 1
    assert await reminders.tick() == 0  # never a second one for this version

    [message] = twilio.messages
    assert message["to"] == PHONE
    assert "ResultFlow Demo Laboratory" in message["body"]
    token = LINK.search(message["body"])
    assert token is not None
    stored = await db.reports.find_one({"_id": report["_id"]})
    assert stored is not None
    assert stored["access"]["reminder_token_hash"] == token_hash(token.group(1))
    assert stored["access"]["token_hash"] == report["access"]["token_hash"]  # still works
    drift = stored["access"]["expires_at"] - report["access"]["expires_at"]
    assert abs(drift) < timedelta(milliseconds=1)  # the same expiry: the reminder adds no time
    [notification] = await db.notifications.find({"purpose": "reminder"}).to_list()
    assert notification["status"] == "sent"
    assert await db.audit.count_documents({"action": "sms.reminder_sent"}) == 1


async def test_replicas_ticking_together_send_one_reminder_per_report(
    scheduler: Callable[[], ReminderScheduler], twilio: FakeTwilio, db: Database
) -> None:
    for _ in range(3):
        await texted_report(db, expires_in=timedelta(days=1))
    replicas = [scheduler() for _ in range(4)]
    sent = await asyncio.gather(*(r.tick() for r in replicas))
    assert sum(sent) == 3
    assert len(twilio.messages) == 3


async def test_no_reminder_for_an_opened_a_far_off_an_expired_or_an_opted_out_link(
    scheduler: Callable[[], ReminderScheduler], twilio: FakeTwilio, db: Database
) -> None:
    await texted_report(db, expires_in=timedelta(days=2), opened_at=utcnow())
    await texted_report(db, expires_in=timedelta(days=20))
    await texted_report(db, expires_in=timedelta(days=-1))
    await texted_report(db, expires_in=timedelta(days=2), status="withdrawn")
    assert await scheduler().tick() == 0

    await OptOuts(db).record(PHONE, Keyword.STOP, utcnow(), source="inbound_sms", word="STOP")
    opted_out = await texted_report(db, expires_in=timedelta(days=2))
    assert await scheduler().tick() == 0
    assert twilio.messages == []
    entry = await db.audit.find_one({"action": "sms.not_sent", "report_id": opted_out["_id"]})
    assert entry is not None and PHONE not in str(entry)


async def test_reminders_are_off_when_the_days_are_zero(
    scheduler: Callable[[], ReminderScheduler],
    twilio: FakeTwilio,
    db: Database,
    settings: Settings,
) -> None:
    settings.reminder_days_before_expiry = 0
    await texted_report(db, expires_in=timedelta(days=1))
    assert await scheduler().tick() == 0
    assert twilio.messages == []
