"""Notify and the lab's second check: the link SMS says which check the portal asks (and the
link records it), and a patient's code request is texted through the provider once."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from contracts.v1 import NotifyPatient, SendAccessCode, SmsReceipt, utcnow
from services.infra import second_check
from services.infra.access_codes import AccessCodes
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.opt_outs import Keyword, OptOuts
from services.infra.service import Resources
from services.infra.settings import Settings
from services.infra.tokens import token_hash
from services.notify.main import create_app
from tests.fake_twilio import FakeTwilio
from tests.support import eventually, report_document

PHONE = "+447700900123"
CODE = re.compile(r"your code (?:to see your results )?is (\d{6})")


async def converted_report(
    db: Database, status: str = "converted", **fields: Any
) -> dict[str, Any]:
    report = report_document(
        status=status,
        patient={"phone": PHONE},
        pdf_file_id="000000000000000000000000",
        **fields,
    )
    await db.reports.insert_one(report)
    return report


async def texted_report(db: Database, check: str = "sms_code") -> dict[str, Any]:
    """A report notify texted already, whose link asks `check`."""
    access = {
        "token_hash": token_hash(uuid.uuid4().hex * 2),
        "expires_at": utcnow() + timedelta(days=365),
        "failed_attempts": 0,
        "locked": False,
        "check": check,
    }
    return await converted_report(db, "notified", access=access)


async def notified(db: Database, report_id: str) -> dict[str, Any] | None:
    return await db.reports.find_one({"_id": report_id, "status": "notified"})


def ask(report: dict[str, Any], request_id: str) -> SendAccessCode:
    return SendAccessCode(
        report_id=report["_id"], request_id=request_id, correlation_id=report["correlation_id"]
    )


async def test_a_pin_labs_sms_asks_for_the_receipt_pin_and_its_link_records_the_check(
    make_resources: Callable[[str], Resources], db: Database, settings: Settings
) -> None:
    settings.second_check_by_lab = "demo-lab=pin"
    with_pin = await converted_report(db, pin_hash="0" * 64)
    without = await converted_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        for report in (with_pin, without):
            await publish(
                resources.broker,
                NotifyPatient(report_id=report["_id"], correlation_id=report["correlation_id"]),
            )
        first = await eventually(lambda: notified(db, with_pin["_id"]))
        second = await eventually(lambda: notified(db, without["_id"]))
    assert first["access"]["check"] == "pin" and "check_note" not in first["access"]
    assert second["access"]["check"] == "date_of_birth"
    assert second["access"]["check_note"] == second_check.NO_PIN_NOTE
    bodies = {m["_id"]: m["body"] async for m in db.outbox.find()}
    pin_sms, date_sms = sorted(bodies.values(), key=lambda body: "PIN" not in body)
    assert "PIN" in pin_sms and "date of birth" not in pin_sms
    assert "date of birth" in date_sms


async def test_a_code_lab_sms_says_a_code_will_be_texted(
    make_resources: Callable[[str], Resources], db: Database, settings: Settings
) -> None:
    settings.second_check = "sms_code"
    report = await converted_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(
            resources.broker,
            NotifyPatient(report_id=report["_id"], correlation_id=report["correlation_id"]),
        )
        done = await eventually(lambda: notified(db, report["_id"]))
    assert done["access"]["check"] == "sms_code"
    [sms] = await db.outbox.find().to_list()
    assert "we will text you a code" in sms["body"]


async def test_a_code_request_is_texted_once_through_twilio_however_often_it_arrives(
    make_resources: Callable[[str], Resources], db: Database, twilio: FakeTwilio
) -> None:
    report = await texted_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        for _ in range(3):  # the same request, redelivered
            await publish(resources.broker, ask(report, "request-1"))
        await eventually(lambda: len(twilio.messages) == 1)
        stored = await eventually(
            lambda: db.notifications.find_one({"purpose": "code:request-1", "status": "sent"})
        )
        await asyncio.sleep(1.5)  # the redeliveries have had their chance to send again
        assert len(twilio.messages) == 1
        [request] = twilio.requests
        assert request.form["To"] == PHONE
        match = CODE.search(request.form["Body"])
        assert match, request.form["Body"]
        code = match.group(1)

        codes = AccessCodes(db)
        kept = await codes.latest(report["_id"])
        assert kept is not None and kept["request_id"] == "request-1"
        secret = resources.settings.second_check_secret
        assert kept["code_hash"] == second_check.keyed_hash(secret, "code", code)
        assert stored["to"] == PHONE

        # A new request is a new SMS, and only its code works from then on.
        await publish(resources.broker, ask(report, "request-2"))
        await eventually(lambda: len(twilio.messages) == 2)
    newer = CODE.search(twilio.requests[1].form["Body"])
    assert newer
    link = report["access"]["token_hash"]
    now = utcnow()
    if newer.group(1) != code:
        assert not await codes.use(
            report["_id"], second_check.keyed_hash(secret, "code", code), link, now
        )
    assert await codes.use(
        report["_id"], second_check.keyed_hash(secret, "code", newer.group(1)), link, now
    )
    actions = [
        (a["action"], a["detail"].get("purpose"))
        async for a in db.audit.find({"report_id": report["_id"]})
    ]
    assert actions == [("sms.sent", "access_code")] * 2
    # The code SMS leaves the report's own status alone.
    assert (await db.reports.find_one({"_id": report["_id"]}) or {})["status"] == "notified"


async def test_an_opted_out_number_is_texted_no_code(
    make_resources: Callable[[str], Resources], db: Database, twilio: FakeTwilio
) -> None:
    report = await texted_report(db)
    await OptOuts(db).record(PHONE, Keyword.STOP, utcnow(), source="inbound_sms", word="STOP")
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, ask(report, "request-1"))
        entry = await eventually(lambda: db.audit.find_one({"action": "sms.not_sent"}))
    assert twilio.messages == []
    assert entry["detail"]["purpose"] == "access_code"
    assert await AccessCodes(db).latest(report["_id"]) is None


async def test_a_link_asking_something_else_gets_no_code(
    make_resources: Callable[[str], Resources], db: Database, twilio: FakeTwilio
) -> None:
    report = await texted_report(db, check="pin")
    other = await texted_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, ask(report, "request-1"))
        await publish(resources.broker, ask(other, "request-2"))
        await eventually(lambda: len(twilio.messages) == 1)
        await asyncio.sleep(1)
    assert len(twilio.messages) == 1
    assert await AccessCodes(db).latest(report["_id"]) is None


async def test_an_undelivered_code_leaves_the_reports_own_status_alone(
    make_resources: Callable[[str], Resources], db: Database, twilio: FakeTwilio
) -> None:
    report = await texted_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, ask(report, "request-1"))
        sent = await eventually(
            lambda: db.notifications.find_one({"purpose": "code:request-1", "status": "sent"})
        )
        receipt = SmsReceipt(
            correlation_id="receipt",
            provider="twilio",
            provider_message_id=sent["provider_message_id"],
            status="undelivered",
            error_code="30003",
        )
        await publish(resources.broker, receipt)
        await eventually(
            lambda: db.notifications.find_one({"_id": sent["_id"], "status": "undelivered"})
        )
    assert (await db.reports.find_one({"_id": report["_id"]}) or {})["status"] == "notified"
