"""Inbound SMS webhooks: a patient's STOP or START reply, from Twilio (signed) and from the
development outbox, stored as the number's opt-out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.main import create_app
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.settings import Settings
from tests.fake_twilio import FakeTwilio

PHONE = "+447700900123"
INBOUND = "/webhooks/twilio/inbound"


@pytest.fixture
async def twilio(settings: Settings) -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        settings.twilio_auth_token = fake.auth_token
        yield fake


@pytest.fixture
async def client(
    settings: Settings, make_resources: Callable[[str], Resources], twilio: FakeTwilio
) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(make_resources("gateway")))) as test_client:
        # Twilio signs the URL it was given: here the test server's own address.
        settings.public_base_url = str(test_client.make_url("")).rstrip("/")
        yield test_client


def url(client: TestClient[Any, Any], path: str) -> str:
    return str(client.make_url(path))


async def test_a_stop_from_a_number_we_never_texted_is_stored_and_start_undoes_it(
    client: TestClient[Any, Any], twilio: FakeTwilio, db: Database
) -> None:
    assert await twilio.send_inbound(url(client, INBOUND), PHONE, "Stop") == 200
    stored = await db.sms_opt_outs.find_one({"_id": PHONE})
    assert stored and stored["opted_out"] is True and stored["keyword"] == "STOP"

    assert await twilio.send_inbound(url(client, INBOUND), PHONE, "START") == 200
    stored = await db.sms_opt_outs.find_one({"_id": PHONE})
    assert stored and stored["opted_out"] is False

    entries = await db.audit.find({"action": {"$regex": "^sms.opted"}}).sort("_id", 1).to_list()
    assert [e["action"] for e in entries] == ["sms.opted_out", "sms.opted_in"]
    assert all(e["actor"] == "patient" and PHONE not in str(e) for e in entries)


@pytest.mark.parametrize("word", ["STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"])
async def test_every_standard_stop_keyword_opts_out(
    client: TestClient[Any, Any], twilio: FakeTwilio, db: Database, word: str
) -> None:
    assert await twilio.send_inbound(url(client, INBOUND), PHONE, word.lower()) == 200
    stored = await db.sms_opt_outs.find_one({"_id": PHONE})
    assert stored and stored["opted_out"] is True


async def test_any_other_reply_changes_nothing(
    client: TestClient[Any, Any], twilio: FakeTwilio, db: Database
) -> None:
    assert await twilio.send_inbound(url(client, INBOUND), PHONE, "Thank you!") == 200
    assert await db.sms_opt_outs.count_documents({}) == 0


async def test_an_inbound_webhook_with_a_bad_signature_is_refused_and_audited(
    client: TestClient[Any, Any], db: Database
) -> None:
    forger = FakeTwilio()  # signs with its own auth token, not ours
    response = await client.post(
        INBOUND,
        data={"From": PHONE, "Body": "STOP", "MessageSid": "SM1"},
        headers={"X-Twilio-Signature": "bm90LWEtc2lnbmF0dXJl"},
    )
    assert response.status == 403
    async with forger:
        assert await forger.send_inbound(url(client, INBOUND), PHONE, "STOP") == 403
    assert await db.sms_opt_outs.count_documents({}) == 0
    refused = await db.audit.find({"action": "webhook.bad_signature"}).to_list()
    assert len(refused) == 2 and all(e["outcome"] == "refused" for e in refused)
    assert refused[0]["detail"]["webhook"] == INBOUND


async def test_the_development_outbox_takes_a_reply_in_the_labs_national_format(
    client: TestClient[Any, Any], db: Database, settings: Settings
) -> None:
    settings.sms_provider = "outbox"
    response = await client.post(
        "/webhooks/outbox/inbound", data={"From": "07911 123456", "Body": "stop"}
    )
    assert response.status == 204
    stored = await db.sms_opt_outs.find_one({"_id": "+447911123456"})
    assert stored and stored["opted_out"] is True
    settings.sms_provider = "twilio"  # with a real provider there is no such door
    response = await client.post("/webhooks/outbox/inbound", data={"From": PHONE, "Body": "x"})
    assert response.status == 404
