"""SMS through Africa's Talking, failover between providers, and the providers' faults, with
the notify service on real RabbitMQ and the MongoDB protocol, and local servers speaking
Twilio's and Africa's Talking's APIs. However a provider fails, a patient gets one SMS at
most, and an SMS whose fate is unknown is left for a person."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.api import PREFIX
from services.gateway.main import create_app as create_gateway
from services.infra import africastalking as at_protocol
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.settings import Settings
from services.notify import logic
from services.notify.main import create_app
from tests.fake_africastalking import FakeAfricasTalking
from tests.fake_twilio import FakeTwilio
from tests.integration.notify.test_notify_service import (
    LINK,
    PHONE,
    insert_report,
    notify,
    report_in,
    settled,
)
from tests.support import PASSWORD, eventually, free_port


def sms_count(twilio: FakeTwilio, africastalking: FakeAfricasTalking) -> int:
    return len(twilio.messages) + len(africastalking.messages)


async def sent_audit(db: Database, report_id: str) -> dict[str, Any]:
    [entry] = await db.audit.find({"action": "sms.sent", "report_id": report_id}).to_list()
    return dict(entry["detail"])


@pytest.fixture
async def gateway_url(make_resources: Callable[[str], Resources]) -> AsyncIterator[str]:
    server = TestServer(create_gateway(make_resources("gateway")))
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_africas_talking_sends_and_its_delivery_report_marks_the_report_delivered(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    africastalking: FakeAfricasTalking,
    gateway_url: str,
) -> None:
    report = await insert_report(db, phone=PHONE)
    resources = make_resources("notify")
    report_url = at_protocol.delivery_report_url(
        gateway_url, settings.africastalking_callback_secret
    )
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))
        [message] = africastalking.messages
        assert await africastalking.send_report(report_url, message["messageId"], "Sent") == 200
        assert await africastalking.send_report(report_url, message["messageId"], "Success") == 200
        delivered = await eventually(lambda: report_in(db, report["_id"], "delivered"))

    assert message["to"] == PHONE and message["from"] == "LABRESULTS"
    assert LINK.search(message["message"])
    assert [h["status"] for h in delivered["history"]] == ["converted", "notified", "delivered"]
    [notification] = await db.notifications.find().to_list()
    assert notification["provider"] == "africastalking"
    assert notification["provider_message_id"] == message["messageId"]
    assert notification["status"] == "delivered"


async def test_an_africas_talking_failure_report_fails_the_report_in_words_staff_can_act_on(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    africastalking: FakeAfricasTalking,
    gateway_url: str,
) -> None:
    report = await insert_report(db)
    resources = make_resources("notify")
    report_url = at_protocol.delivery_report_url(
        gateway_url, settings.africastalking_callback_secret
    )
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))
        [message] = africastalking.messages
        status = await africastalking.send_report(
            report_url, message["messageId"], "Failed", "UserIsInactive"
        )
        assert status == 200
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))

    assert failed["failure_reason"] == (
        "SMS not delivered: UserIsInactive (the number is inactive or deactivated by its operator)"
    )


async def test_primary_refuses_and_the_secondary_sends_exactly_one_sms(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    twilio: FakeTwilio,
    africastalking: FakeAfricasTalking,
) -> None:
    settings.sms_provider = "twilio,africastalking"
    twilio.fail_next(400, 21408, "Permission to send an SMS has not been enabled")
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    assert sms_count(twilio, africastalking) == 1
    [message] = africastalking.messages
    [notification] = await db.notifications.find().to_list()
    assert (notification["provider"], notification["provider_message_id"]) == (
        "africastalking",
        message["messageId"],
    )
    assert notification["attempts"] == 1
    detail = await sent_audit(db, report["_id"])
    assert (detail["provider"], detail["failed_over_from"]) == ("africastalking", "twilio")


async def test_primary_down_and_the_secondary_sends(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    twilio: FakeTwilio,
    africastalking: FakeAfricasTalking,
) -> None:
    settings.sms_provider = "africastalking,twilio"
    settings.africastalking_base_url = f"http://127.0.0.1:{free_port()}"  # port closed
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    assert africastalking.requests == []
    [message] = twilio.messages
    [notification] = await db.notifications.find().to_list()
    assert (notification["provider"], notification["provider_message_id"]) == (
        "twilio",
        message["sid"],
    )


async def test_primary_times_out_after_accepting_no_failover_no_second_sms_left_for_a_person(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    amqp_url: str,
    twilio: FakeTwilio,
    africastalking: FakeAfricasTalking,
) -> None:
    settings.sms_provider = "africastalking,twilio"
    settings.sms_request_timeout_seconds = 1.0
    africastalking.delay_seconds = 3  # it has the message, but answers too late
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))
        await publish(resources.broker, notify(report))  # a duplicate changes nothing
        await settled(amqp_url, "notify.patient")

    assert failed["failure_reason"] == logic.OUTCOME_UNKNOWN_REASON
    assert len(africastalking.requests) == 1
    assert twilio.requests == []
    assert sms_count(twilio, africastalking) == 1
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "unknown"
    [flag] = await db.audit.find({"action": "sms.outcome_unknown"}).to_list()
    assert "TimeoutError" in flag["detail"]["error"]


async def test_twilio_500_is_an_unknown_outcome_and_is_not_failed_over(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    amqp_url: str,
    twilio: FakeTwilio,
    africastalking: FakeAfricasTalking,
) -> None:
    # Twilio may have created the message before its 500: a second provider could text twice.
    settings.sms_provider = "twilio,africastalking"
    twilio.fail_next(500, 20500, "Internal Server Error")
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))
        await settled(amqp_url, "notify.patient")

    assert failed["failure_reason"] == logic.OUTCOME_UNKNOWN_REASON
    assert africastalking.requests == []
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "unknown"


async def test_a_recipient_500_from_africas_talking_fails_over_to_twilio_without_duplicates(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    twilio: FakeTwilio,
    africastalking: FakeAfricasTalking,
) -> None:
    settings.sms_provider = "africastalking,twilio"
    africastalking.refuse_next(500)
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    assert sms_count(twilio, africastalking) == 1
    assert len(twilio.messages) == 1


async def test_a_recipient_500_from_the_only_provider_is_retried_and_sends_once(
    make_resources: Callable[[str], Resources],
    db: Database,
    africastalking: FakeAfricasTalking,
) -> None:
    africastalking.refuse_next(500)
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    assert [r.status for r in africastalking.requests] == [201, 201]
    assert len(africastalking.messages) == 1
    [notification] = await db.notifications.find().to_list()
    assert notification["attempts"] == 2
    assert notification["provider_message_id"] == africastalking.messages[0]["messageId"]


async def test_too_many_requests_with_retry_after_is_waited_out_and_sent_once(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    twilio: FakeTwilio,
    africastalking: FakeAfricasTalking,
) -> None:
    settings.sms_provider = "africastalking,twilio"
    africastalking.fail_next(429, "Too Many Requests", retry_after="2")
    report = await insert_report(db)
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    first, second = africastalking.requests
    assert (first.status, second.status) == (429, 201)
    assert second.at - first.at >= 2.0
    assert len(africastalking.messages) == 1
    assert twilio.requests == []
    [notification] = await db.notifications.find().to_list()
    assert notification["attempts"] == 1  # waited within the one delivery


async def test_a_provider_down_for_a_while_then_back_sends_once(
    make_resources: Callable[[str], Resources],
    db: Database,
    settings: Settings,
    africastalking: FakeAfricasTalking,
) -> None:
    settings.sms_retry_backoff_seconds = 0.5  # redeliveries 0.5, 1, 2, 4 s apart
    await africastalking.go_down()
    report = await insert_report(db)
    resources = make_resources("notify")

    async def refused_twice() -> bool:
        # The second attempt has been refused (its claim released), not merely started.
        notification = await db.notifications.find_one({"report_id": report["_id"]})
        return (
            notification is not None
            and notification["attempts"] >= 2
            and notification["status"] == "failed"
        )

    async with create_app(resources):
        await publish(resources.broker, notify(report))
        await eventually(refused_twice)
        await africastalking.come_back()
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    assert len(africastalking.messages) == 1
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "sent"
    assert notification["attempts"] >= 3


async def test_a_provider_down_past_every_redelivery_fails_the_report_and_staff_retry_sends_once(
    make_resources: Callable[[str], Resources],
    db: Database,
    africastalking: FakeAfricasTalking,
    gateway_url: str,
) -> None:
    await africastalking.go_down()
    report = await insert_report(db)
    # Rendered and converted: a retry sends it on from notify.
    await db.reports.update_one({"_id": report["_id"]}, {"$set": {"docx_file_id": "d" * 24}})
    await create_user(db, "admin", PASSWORD)
    _, token = await ApiTokens(db).create("admin", "tests")
    resources = make_resources("notify")
    async with create_app(resources):
        await publish(resources.broker, notify(report))
        failed = await eventually(lambda: report_in(db, report["_id"], "failed"))
        assert "could not connect to Africa's Talking" in failed["failure_reason"]
        await africastalking.come_back()
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
            http.post(f"{gateway_url}{PREFIX}/reports/{report['_id']}/retry") as response,
        ):
            assert response.status == 200
        await eventually(lambda: report_in(db, report["_id"], "notified"))

    assert len(africastalking.messages) == 1
    [notification] = await db.notifications.find().to_list()
    assert notification["status"] == "sent"
