"""The notify service end to end: real RabbitMQ, real MongoDB protocol, a local Twilio."""

from __future__ import annotations

import asyncio
import hashlib
import re
import subprocess
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from contracts.v1 import NotifyPatient, SmsReceipt, utcnow
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.settings import Settings
from services.infra.twilio import signature_valid
from services.notify import logic
from services.notify.main import create_app
from tests.fake_twilio import FakeTwilio
from tests.support import eventually, free_port, report_document

PHONE = "+447700900123"
PATIENT_NAME = "Amelia Thornbury"
GLUCOSE = "5.4"
LINK = re.compile(r"/r/([A-Za-z0-9_-]{43})")


async def insert_report(
    db: Database, *, status: str = "converted", phone: str = PHONE
) -> dict[str, Any]:
    report = report_document(
        status=status,
        patient={"name": PATIENT_NAME, "phone": phone},
        results=[{"test": "Glucose", "value": GLUCOSE, "unit": "mmol/L"}],
        pdf_file_id="000000000000000000000000",
    )
    await db.reports.insert_one(report)
    return report


async def insert_notification(
    db: Database, report: dict[str, Any], status: str, **fields: Any
) -> None:
    """A notification record an earlier delivery of the same message left behind."""
    await db.notifications.insert_one(
        {
            "_id": uuid.uuid4().hex,
            "report_id": report["_id"],
            "version": 1,
            "purpose": "result_ready",
            "to": PHONE,
            "provider": "outbox",
            "status": status,
            "created_at": utcnow(),
            **fields,
        }
    )


def notify(report: dict[str, Any]) -> NotifyPatient:
    return NotifyPatient(correlation_id=report["correlation_id"], report_id=report["_id"])


async def report_in(db: Database, report_id: str, *statuses: str) -> dict[str, Any] | None:
    report = await db.reports.find_one({"_id": report_id})
    return report if report is not None and report["status"] in statuses else None


def queue_messages(amqp_url: str, queue: str) -> int:
    """Ready plus unacknowledged messages: 0 once every delivery has been settled."""
    vhost = urlsplit(amqp_url).path.lstrip("/") or "/"
    listing = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "name", "messages", "-q", "--no-table-headers"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    counts = dict(line.split() for line in listing.splitlines() if line.strip())
    return int(counts.get(queue, 0))


async def settled(amqp_url: str, queue: str) -> None:
    await eventually(lambda: asyncio.to_thread(lambda: queue_messages(amqp_url, queue) == 0))


# --- development outbox ----------------------------------------------------------------------


async def test_converted_report_gets_one_sms_whose_link_matches_the_stored_hash(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        notified = await eventually(lambda: report_in(db, report["_id"], "notified"))

    [sms] = await db.outbox.find().to_list()
    assert sms["to"] == PHONE
    token = LINK.search(sms["body"])
    assert token is not None
    assert hashlib.sha256(token.group(1).encode()).hexdigest() == notified["access"]["token_hash"]
    assert notified["access"]["expires_at"] > utcnow() + timedelta(days=29)
    assert notified["access"]["failed_attempts"] == 0
    assert notified["access"]["locked"] is False
    # The SMS says who and where, nothing about the patient or the results.
    assert sms["body"].startswith("ResultFlow Demo Laboratory: ")
    assert PATIENT_NAME.split()[0] not in sms["body"]
    assert GLUCOSE not in sms["body"]

    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "sent"
    assert notification["provider"] == "outbox"
    assert notification["provider_message_id"] == sms["provider_message_id"]
    assert notification["to"] == PHONE
    assert token.group(1) not in str(notification)
    assert [h["status"] for h in notified["history"]] == ["converted", "notified"]


async def test_notify_patient_published_twice_and_again_after_success_sends_one_sms(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))
        await settled(amqp_url, "notify.patient")
        await publish(resources.broker, notify(report))
        await settled(amqp_url, "notify.patient")

    assert await db.outbox.count_documents({}) == 1
    assert await db.notifications.count_documents({}) == 1
    assert (await db.reports.find_one({"_id": report["_id"]}) or {})["status"] == "notified"


async def test_released_report_is_notified_too(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await insert_report(db, status="released")
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    assert await db.outbox.count_documents({"to": PHONE}) == 1


async def test_held_report_gets_no_sms(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    report = await insert_report(db, status="held")
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await settled(amqp_url, "notify.patient")

    assert await db.outbox.count_documents({}) == 0
    assert (await db.reports.find_one({"_id": report["_id"]}) or {})["status"] == "held"


async def test_report_without_a_valid_phone_fails_with_a_reason(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await insert_report(db, phone="not a number")
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))

    assert "phone number" in failed["failure_reason"]
    assert await db.outbox.count_documents({}) == 0


async def test_claim_abandoned_before_the_provider_call_is_taken_over_and_sent_once(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await insert_report(db)
    # A worker claimed the SMS and died (or was cancelled) before calling the provider.
    long_ago = utcnow() - timedelta(hours=1)
    await insert_notification(db, report, "claimed", heartbeat_at=long_ago, created_at=long_ago)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    assert await db.outbox.count_documents({}) == 1
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "sent"


async def test_interrupted_send_is_not_repeated_and_fails_the_report(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await insert_report(db)
    # A worker claimed the SMS an hour ago and died while talking to the provider.
    long_ago = utcnow() - timedelta(hours=1)
    await insert_notification(db, report, "sending", heartbeat_at=long_ago, created_at=long_ago)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))

    assert failed["failure_reason"] == (
        "SMS outcome unknown after an interrupted send; check the provider and resend"
    )
    assert await db.outbox.count_documents({}) == 0
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "unknown"


async def test_sms_the_provider_refused_earlier_is_sent_on_redelivery(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await insert_report(db)
    await insert_notification(
        db, report, "failed", refused=True, error="could not connect", attempts=1
    )
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    assert await db.outbox.count_documents({}) == 1
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "sent"
    assert notification["attempts"] == 2


async def test_sms_recorded_as_sent_before_a_crash_only_advances_the_report(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await insert_report(db)
    await insert_notification(db, report, "sent", provider_message_id="earlier")
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    assert await db.outbox.count_documents({}) == 0


async def test_delivery_receipt_marks_report_delivered_and_later_receipts_do_not_regress(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))
        [sms] = await db.outbox.find().to_list()

        def receipt(status: Any) -> SmsReceipt:
            return SmsReceipt(
                correlation_id="webhook",
                provider="outbox",
                provider_message_id=sms["provider_message_id"],
                status=status,
            )

        await publish(resources.broker, receipt("delivered"))
        await eventually(lambda: report_in(db, report["_id"], "delivered"))
        await publish(resources.broker, receipt("sent"))
        await publish(resources.broker, receipt("delivered"))
        await settled(amqp_url, "notify.sms-receipt")

    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "delivered"
    final = await db.reports.find_one({"_id": report["_id"]}) or {}
    assert [h["status"] for h in final["history"]] == ["converted", "notified", "delivered"]


async def test_undelivered_receipt_fails_the_report_with_the_carrier_code(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))
        [sms] = await db.outbox.find().to_list()
        await publish(
            resources.broker,
            SmsReceipt(
                correlation_id="webhook",
                provider="outbox",
                provider_message_id=sms["provider_message_id"],
                status="undelivered",
                error_code="30003",
            ),
        )
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))

    assert (
        failed["failure_reason"] == "SMS not delivered: 30003 (phone unreachable or switched off)"
    )
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "undelivered"
    assert notification["error"] == "undelivered 30003"


# --- Twilio ----------------------------------------------------------------------------------


async def test_twilio_gets_the_sms_with_credentials_sender_and_status_callback(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    twilio: FakeTwilio,
) -> None:
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        notified = await eventually(lambda: report_in(db, report["_id"], "notified"))

    [request] = twilio.requests
    assert (request.username, request.password) == (twilio.account_sid, twilio.auth_token)
    assert request.account_sid == twilio.account_sid
    assert request.form["To"] == PHONE
    assert request.form["From"] == "+447700900999"
    assert request.form["StatusCallback"] == f"{settings.public_base_url}/webhooks/twilio/status"
    token = LINK.search(request.form["Body"])
    assert token is not None
    assert hashlib.sha256(token.group(1).encode()).hexdigest() == notified["access"]["token_hash"]
    [message] = twilio.messages
    [notification] = await db.notifications.find().to_list()
    assert notification["provider"] == "twilio"
    assert notification["provider_message_id"] == message["sid"]
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert notification["status"] == "sent"
    assert await db.outbox.count_documents({}) == 0


async def test_wrong_twilio_credentials_fail_the_report_with_twilios_message(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    twilio: FakeTwilio,
) -> None:
    settings.twilio_auth_token = "not-the-token"
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))

    assert failed["failure_reason"] == (
        "SMS provider refused the message: Twilio error 20003: Authenticate"
    )
    assert twilio.messages == []
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "failed"
    assert notification["error"] == "Twilio error 20003: Authenticate"


async def test_twilio_server_error_is_retried_and_sends_one_sms(
    make_resources: Callable[[str], Resources], db: Database, twilio: FakeTwilio
) -> None:
    twilio.fail_next(503, 20503, "Service Unavailable")
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    assert [r.status for r in twilio.requests] == [503, 201]
    assert len(twilio.messages) == 1
    [notification] = await db.notifications.find().to_list()
    assert notification["provider_message_id"] == twilio.messages[0]["sid"]
    assert notification["attempts"] == 2


async def test_unreachable_twilio_fails_the_report_after_the_delivery_limit(
    make_resources: Callable[[str], Resources], db: Database, settings: Settings
) -> None:
    settings.sms_provider = "twilio"
    settings.twilio_base_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings.twilio_account_sid = "AC" + "0" * 32
    settings.twilio_auth_token = "token"
    settings.twilio_from = "+447700900999"
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))

    assert failed["failure_reason"].startswith("gave up after 5 attempts: ProviderRefused")
    assert "could not connect to Twilio" in failed["failure_reason"]
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "failed"
    assert notification["attempts"] == 5


async def test_connection_lost_after_twilio_accepted_is_not_resent(
    make_resources: Callable[[str], Resources],
    db: Database,
    amqp_url: str,
    twilio: FakeTwilio,
) -> None:
    twilio.drop_next()
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))
        await publish(resources.broker, notify(report))
        await settled(amqp_url, "notify.patient")

    assert failed["failure_reason"] == logic.OUTCOME_UNKNOWN_REASON
    assert len(twilio.requests) == 1
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "unknown"


async def test_signed_twilio_delivery_callback_marks_the_report_delivered(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    twilio: FakeTwilio,
) -> None:
    """The gateway's part played by a tiny webhook: check the signature, publish a receipt."""
    port = free_port()
    settings.public_base_url = f"http://127.0.0.1:{port}"
    resources = make_resources("notify")
    rejected: list[str] = []

    async def status_webhook(request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        signature = request.headers.get("X-Twilio-Signature")
        if not signature_valid(twilio.auth_token, str(request.url), form, signature):
            rejected.append(form["MessageSid"])
            return web.Response(status=403)
        await publish(
            resources.broker,
            SmsReceipt(
                correlation_id="twilio-webhook",
                provider="twilio",
                provider_message_id=form["MessageSid"],
                status=form["MessageStatus"],  # type: ignore[arg-type]
                error_code=form.get("ErrorCode", ""),
            ),
        )
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/webhooks/twilio/status", status_webhook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        report = await insert_report(db)
        async with create_app(resources):
            await publish(resources.broker, notify(report))
            await eventually(lambda: report_in(db, report["_id"], "notified"))
            [message] = twilio.messages
            assert await twilio.send_status(message["sid"], "sent") == 204
            assert await twilio.send_status(message["sid"], "delivered") == 204
            delivered = await eventually(lambda: report_in(db, report["_id"], "delivered"))
    finally:
        await runner.cleanup()

    assert rejected == []
    assert [h["status"] for h in delivered["history"]] == ["converted", "notified", "delivered"]
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "delivered"


async def test_two_workers_given_the_same_message_while_twilio_is_slow_send_one_sms(
    make_resources: Callable[[str], Resources],
    db: Database,
    amqp_url: str,
    twilio: FakeTwilio,
) -> None:
    # Longer than a heartbeat: the waiting worker must see the claim kept alive.
    twilio.delay_seconds = 3
    report = await insert_report(db)
    first, second = make_resources("notify"), make_resources("notify")
    async with create_app(first), create_app(second):
        await publish(first.broker, notify(report))
        await publish(second.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))
        await settled(amqp_url, "notify.patient")

    assert len(twilio.requests) == 1
    assert (await db.reports.find_one({"_id": report["_id"]}) or {})["status"] == "notified"
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "sent"
