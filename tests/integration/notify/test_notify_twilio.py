"""The Twilio adapter against a local server speaking Twilio's protocol."""

from __future__ import annotations

import pytest

from services.notify.providers import OutcomeUnknown, ProviderRefused, TwilioProvider
from tests.fake_twilio import FakeTwilio
from tests.support import free_port

CALLBACK = "https://lab.example/webhooks/twilio/status"


def provider(twilio: FakeTwilio, sender: str = "+447700900999") -> TwilioProvider:
    return TwilioProvider(
        account_sid=twilio.account_sid,
        auth_token=twilio.auth_token,
        sender=sender,
        base_url=twilio.base_url,
    )


async def test_accepted_message_returns_twilios_sid_and_status() -> None:
    async with FakeTwilio() as twilio:
        sent = await provider(twilio).send("+447700900123", "hello", CALLBACK)

    [message] = twilio.messages
    assert (sent.provider, sent.provider_message_id, sent.status) == (
        "twilio",
        message["sid"],
        "queued",
    )
    [request] = twilio.requests
    assert request.form == {
        "To": "+447700900123",
        "From": "+447700900999",
        "Body": "hello",
        "StatusCallback": CALLBACK,
    }


async def test_messaging_service_sender_is_sent_as_messaging_service_sid() -> None:
    async with FakeTwilio() as twilio:
        await provider(twilio, sender="MG" + "1" * 32).send("+447700900123", "hi", CALLBACK)

    [request] = twilio.requests
    assert request.form["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in request.form


async def test_invalid_number_is_a_permanent_refusal_without_the_number_in_it() -> None:
    async with FakeTwilio() as twilio:
        with pytest.raises(ProviderRefused) as refused:
            await provider(twilio).send("07700900123", "hi", CALLBACK)

    assert refused.value.permanent
    assert refused.value.code == "21211"
    assert str(refused.value) == (
        "Twilio error 21211: The 'To' number <number> is not a valid phone number."
    )
    assert twilio.messages == []


async def test_unavailable_service_is_a_refusal_worth_retrying() -> None:
    async with FakeTwilio() as twilio:
        twilio.fail_next(503, 20503, "Service Unavailable")
        with pytest.raises(ProviderRefused) as refused:
            await provider(twilio).send("+447700900123", "hi", CALLBACK)

    assert not refused.value.permanent
    assert refused.value.http_status == 503


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_server_or_gateway_error_leaves_the_outcome_unknown(status: int) -> None:
    # Twilio may have created the message before the error: sending again could text twice.
    async with FakeTwilio() as twilio:
        twilio.fail_next(status, 20500, "Internal Server Error")
        with pytest.raises(OutcomeUnknown, match=f"Twilio answered {status}"):
            await provider(twilio).send("+447700900123", "hi", CALLBACK)


async def test_no_listener_is_a_refusal_and_a_cut_connection_is_unknown() -> None:
    nowhere = TwilioProvider(
        account_sid="AC" + "0" * 32,
        auth_token="token",
        sender="+447700900999",
        base_url=f"http://127.0.0.1:{free_port()}",
    )
    with pytest.raises(ProviderRefused) as refused:
        await nowhere.send("+447700900123", "hi", CALLBACK)
    assert refused.value.code == "connection"

    async with FakeTwilio() as twilio:
        twilio.drop_next()
        with pytest.raises(OutcomeUnknown):
            await provider(twilio).send("+447700900123", "hi", CALLBACK)
    assert len(twilio.messages) == 1


def test_twilio_provider_needs_its_credentials() -> None:
    with pytest.raises(ValueError, match="TWILIO_AUTH_TOKEN"):
        TwilioProvider(account_sid="AC1", auth_token="", sender="+447700900999")
