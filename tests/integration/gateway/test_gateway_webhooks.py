"""Twilio delivery-receipt webhook against real RabbitMQ."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.main import create_app
from services.infra.service import Resources
from services.infra.settings import Settings
from services.infra.twilio import signature as twilio_signature
from tests.support import drain

AUTH_TOKEN = "twilio-test-auth-token"
PATH = "/webhooks/twilio/status"
RECEIPT = {
    "MessageSid": "SM0123456789abcdef0123456789abcdef",
    "MessageStatus": "undelivered",
    "ErrorCode": "30003",
    "To": "+447700900123",
    "AccountSid": "AC123",
}


@pytest.fixture
async def client(
    settings: Settings, make_resources: Callable[[str], Resources]
) -> AsyncIterator[TestClient[Any, Any]]:
    settings.twilio_auth_token = AUTH_TOKEN
    async with TestClient(TestServer(create_app(make_resources("gateway")))) as test_client:
        yield test_client


async def test_receipt_with_a_good_signature_goes_to_notify(
    client: TestClient[Any, Any], settings: Settings, amqp_url: str
) -> None:
    signature = twilio_signature(AUTH_TOKEN, settings.public_base_url + PATH, RECEIPT)
    response = await client.post(PATH, data=RECEIPT, headers={"X-Twilio-Signature": signature})
    assert response.status == 204
    [receipt] = await drain(amqp_url, "notify.sms-receipt")
    assert receipt["provider"] == "twilio"
    assert receipt["provider_message_id"] == RECEIPT["MessageSid"]
    assert (receipt["status"], receipt["error_code"]) == ("undelivered", "30003")


async def test_receipt_with_a_bad_signature_is_refused_and_not_passed_on(
    client: TestClient[Any, Any], settings: Settings, amqp_url: str
) -> None:
    forged = twilio_signature("someone-else", settings.public_base_url + PATH, RECEIPT)
    response = await client.post(PATH, data=RECEIPT, headers={"X-Twilio-Signature": forged})
    assert response.status == 403
    tampered = {**RECEIPT, "MessageStatus": "delivered"}
    signature = twilio_signature(AUTH_TOKEN, settings.public_base_url + PATH, RECEIPT)
    response = await client.post(PATH, data=tampered, headers={"X-Twilio-Signature": signature})
    assert response.status == 403
    assert (await client.post(PATH, data=RECEIPT)).status == 403
    assert await drain(amqp_url, "notify.sms-receipt") == []
