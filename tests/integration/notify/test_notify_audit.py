"""Every SMS sent, and every one that failed, is in the audit trail as the system's doing:
which report, which provider and message id, never the number or the text."""

from __future__ import annotations

from collections.abc import Callable

from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from services.notify.main import create_app
from tests.integration.notify.test_notify_service import PHONE, insert_report, notify, report_in
from tests.support import eventually


async def test_an_sms_sent_is_audited_with_its_provider_message_id(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))
        entry = await eventually(lambda: db.audit.find_one({"action": "sms.sent"}))
    [sms] = await db.outbox.find().to_list()
    assert (entry["actor"], entry["role"], entry["object"]) == ("system", "system", report["_id"])
    assert entry["outcome"] == "success"
    assert entry["detail"]["provider_message_id"] == sms["provider_message_id"]
    assert PHONE not in str(entry) and sms["body"] not in str(entry)


async def test_an_sms_that_cannot_be_sent_is_audited_as_a_failure(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await insert_report(db, phone="not a number")
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "failed"))
    [entry] = await db.audit.find({"action": "sms.failed"}).to_list()
    assert (entry["object"], entry["outcome"]) == (report["_id"], "failure")
    assert entry["detail"] == {"error": "no valid phone number"}
