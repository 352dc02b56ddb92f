"""Africa's Talking's delivery-report webhook against real RabbitMQ: its URL's secret is the
only proof a report came from Africa's Talking."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from contracts.v1 import utcnow
from services.gateway.api import PREFIX
from services.gateway.main import create_app
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.settings import Settings
from tests.support import drain, report_document

SECRET = "at-delivery-secret-0123456789abcdef"
PATH = "/webhooks/africastalking/delivery/"
REPORT = {
    "id": "ATXid_0123456789abcdef0123456789abcdef",
    "status": "Failed",
    "phoneNumber": "+254711000123",
    "networkCode": "63902",
    "failureReason": "UserIsInactive",
    "retryCount": "0",
}


@pytest.fixture
async def client(
    settings: Settings, make_resources: Callable[[str], Resources]
) -> AsyncIterator[TestClient[Any, Any]]:
    settings.africastalking_callback_secret = SECRET
    async with TestClient(TestServer(create_app(make_resources("gateway")))) as test_client:
        yield test_client


async def test_a_delivery_report_to_the_secret_url_goes_to_notify(
    client: TestClient[Any, Any], amqp_url: str
) -> None:
    response = await client.post(PATH + SECRET, data=REPORT)
    assert response.status == 200
    [receipt] = await drain(amqp_url, "notify.sms-receipt")
    assert receipt["provider"] == "africastalking"
    assert receipt["provider_message_id"] == REPORT["id"]
    assert (receipt["status"], receipt["error_code"]) == ("undelivered", "UserIsInactive")


@pytest.mark.parametrize(
    ("status", "receipt_status"),
    [
        ("Sent", "sent"),
        ("Submitted", "sent"),
        ("Buffered", "sent"),
        ("Success", "delivered"),
        ("Rejected", "failed"),
    ],
)
async def test_each_delivery_status_maps_onto_a_receipt(
    client: TestClient[Any, Any], amqp_url: str, status: str, receipt_status: str
) -> None:
    response = await client.post(PATH + SECRET, data={**REPORT, "status": status})
    assert response.status == 200
    [receipt] = await drain(amqp_url, "notify.sms-receipt")
    assert receipt["status"] == receipt_status


async def test_a_report_to_a_forged_url_is_refused_audited_and_not_passed_on(
    client: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    for guess in ("not-the-secret", SECRET[:-1], SECRET + "x"):
        response = await client.post(PATH + guess, data={**REPORT, "status": "Success"})
        assert response.status == 403
    assert await drain(amqp_url, "notify.sms-receipt") == []
    refused = await db.audit.find({"action": "webhook.bad_signature"}).to_list()
    assert len(refused) == 3 and all(e["outcome"] == "refused" for e in refused)
    # The route is recorded, never the guessed secret.
    assert {e["detail"]["webhook"] for e in refused} == {PATH + "{secret}"}


async def test_without_a_configured_secret_every_report_is_refused(
    client: TestClient[Any, Any], settings: Settings, amqp_url: str
) -> None:
    settings.africastalking_callback_secret = ""
    assert (await client.post(PATH + SECRET, data=REPORT)).status == 403
    assert await drain(amqp_url, "notify.sms-receipt") == []


async def test_a_report_without_an_id_is_a_bad_request_and_an_unknown_status_is_ignored(
    client: TestClient[Any, Any], amqp_url: str
) -> None:
    assert (await client.post(PATH + SECRET, data={"status": "Success"})).status == 400
    assert (await client.post(PATH + SECRET, data={**REPORT, "status": "Mystery"})).status == 200
    assert await drain(amqp_url, "notify.sms-receipt") == []


async def test_staff_see_which_provider_sent_a_reports_sms_on_the_page_and_in_the_api(
    admin: TestClient[Any, Any], db: Database
) -> None:
    report = report_document(status="delivered")
    await db.reports.insert_one(report)
    await db.notifications.insert_one(
        {
            "_id": "n1",
            "report_id": report["_id"],
            "version": 1,
            "purpose": "result_ready",
            "to": "+254711000123",
            "provider": "africastalking",
            "status": "delivered",
            "attempts": 1,
            "provider_message_id": REPORT["id"],
            "error": None,
            "created_at": utcnow(),
        }
    )
    page = await (await admin.get(f"/reports/{report['_id']}")).text()
    assert "africastalking" in page and REPORT["id"] in page
    response = await admin.get(f"{PREFIX}/reports/{report['_id']}")
    assert response.status == 200
    [sms] = (await response.json())["notifications"]
    assert (sms["provider"], sms["provider_message_id"]) == ("africastalking", REPORT["id"])
