"""The Africa's Talking adapter, and failover between providers, against local servers
speaking Africa's Talking's and Twilio's protocols."""

from __future__ import annotations

import pytest

from services.notify.africastalking import AfricasTalkingProvider
from services.notify.failover import FailoverProvider
from services.notify.providers import OutcomeUnknown, ProviderRefused, TwilioProvider
from tests.fake_africastalking import FakeAfricasTalking
from tests.fake_twilio import FakeTwilio
from tests.support import free_port

PHONE = "+254711000123"
CALLBACK = "https://lab.example/webhooks/twilio/status"


def provider(at: FakeAfricasTalking, **kwargs: object) -> AfricasTalkingProvider:
    options: dict[str, object] = {
        "username": at.username,
        "api_key": at.api_key,
        "sender": "LABRESULTS",
        "base_url": at.base_url,
    }
    return AfricasTalkingProvider(**(options | kwargs))  # type: ignore[arg-type]


def twilio_provider(twilio: FakeTwilio) -> TwilioProvider:
    return TwilioProvider(
        account_sid=twilio.account_sid,
        auth_token=twilio.auth_token,
        sender="+447700900999",
        base_url=twilio.base_url,
    )


async def test_accepted_sms_returns_africas_talkings_message_id() -> None:
    async with FakeAfricasTalking() as at:
        sent = await provider(at).send(PHONE, "hello", CALLBACK)

    [message] = at.messages
    assert (sent.provider, sent.provider_message_id, sent.status) == (
        "africastalking",
        message["messageId"],
        "sent",
    )
    [request] = at.requests
    assert request.api_key == at.api_key
    assert request.accept == "application/json"
    assert request.form == {
        "username": "sandbox",
        "to": PHONE,
        "message": "hello",
        "from": "LABRESULTS",
    }


async def test_without_a_sender_africas_talking_picks_its_default() -> None:
    async with FakeAfricasTalking() as at:
        await provider(at, sender="").send(PHONE, "hello", CALLBACK)

    assert "from" not in at.requests[0].form


async def test_a_wrong_api_key_is_a_final_refusal() -> None:
    async with FakeAfricasTalking() as at:
        with pytest.raises(ProviderRefused) as refused:
            await provider(at, api_key="atsk_wrong").send(PHONE, "hello", CALLBACK)

    assert refused.value.permanent
    assert refused.value.http_status == 401
    assert str(refused.value) == (
        "Africa's Talking refused: The supplied authentication is invalid"
    )
    assert at.messages == []


@pytest.mark.parametrize(
    ("status_code", "words"),
    [(403, "InvalidPhoneNumber"), (405, "InsufficientBalance"), (402, "InvalidSenderId")],
)
async def test_a_recipient_refusal_is_final_for_this_provider(status_code: int, words: str) -> None:
    async with FakeAfricasTalking() as at:
        at.refuse_next(status_code)
        with pytest.raises(ProviderRefused) as refused:
            await provider(at).send(PHONE, "hello", CALLBACK)

    assert refused.value.permanent
    assert not refused.value.opted_out
    assert str(refused.value) == f"Africa's Talking refused: {status_code} {words}"
    assert PHONE not in str(refused.value)
    assert at.messages == []


async def test_a_blacklisted_recipient_counts_as_opted_out() -> None:
    async with FakeAfricasTalking() as at:
        at.refuse_next(406)
        with pytest.raises(ProviderRefused) as refused:
            await provider(at).send(PHONE, "hello", CALLBACK)

    assert refused.value.opted_out


@pytest.mark.parametrize("status_code", [500, 501, 502])
async def test_a_recipient_failure_on_africas_talkings_side_is_worth_retrying(
    status_code: int,
) -> None:
    async with FakeAfricasTalking() as at:
        at.refuse_next(status_code)
        with pytest.raises(ProviderRefused) as refused:
            await provider(at).send(PHONE, "hello", CALLBACK)

    assert not refused.value.permanent
    assert refused.value.code == str(status_code)


async def test_http_errors_unavailable_and_too_many_requests_are_refusals() -> None:
    async with FakeAfricasTalking() as at:
        at.fail_next(503, "Service Unavailable")
        at.fail_next(429, "Too Many Requests", retry_after="7")
        with pytest.raises(ProviderRefused) as unavailable:
            await provider(at).send(PHONE, "hello", CALLBACK)
        with pytest.raises(ProviderRefused) as too_many:
            await provider(at).send(PHONE, "hello", CALLBACK)

    assert not unavailable.value.permanent
    assert not too_many.value.permanent
    assert too_many.value.retry_after == 7.0
    assert at.messages == []


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_a_server_error_for_the_whole_request_leaves_the_outcome_unknown(
    status: int,
) -> None:
    async with FakeAfricasTalking() as at:
        at.fail_next(status)
        with pytest.raises(OutcomeUnknown, match=f"answered {status}"):
            await provider(at).send(PHONE, "hello", CALLBACK)


async def test_no_listener_is_a_refusal_a_cut_or_timed_out_answer_is_unknown() -> None:
    nowhere = AfricasTalkingProvider(
        username="sandbox", api_key="k", base_url=f"http://127.0.0.1:{free_port()}"
    )
    with pytest.raises(ProviderRefused) as refused:
        await nowhere.send(PHONE, "hello", CALLBACK)
    assert refused.value.code == "connection"

    async with FakeAfricasTalking() as at:
        at.drop_next()
        with pytest.raises(OutcomeUnknown):
            await provider(at).send(PHONE, "hello", CALLBACK)
        at.delay_seconds = 3
        with pytest.raises(OutcomeUnknown, match="TimeoutError"):
            await provider(at, timeout_seconds=1.0).send(PHONE, "hello", CALLBACK)
    # Both were accepted: the provider has them, so nobody may send them again.
    assert len(at.messages) == 2


async def test_a_host_name_that_does_not_resolve_is_a_refusal() -> None:
    nowhere = AfricasTalkingProvider(
        username="sandbox", api_key="k", base_url="http://no-such-host.invalid"
    )
    with pytest.raises(ProviderRefused, match="DNS") as refused:
        await nowhere.send(PHONE, "hello", CALLBACK)
    assert refused.value.code == "connection"


def test_africas_talking_provider_needs_its_credentials() -> None:
    with pytest.raises(ValueError, match="AFRICASTALKING_API_KEY"):
        AfricasTalkingProvider(username="sandbox", api_key="")


# --- failover ---------------------------------------------------------------------------------


async def test_failover_sends_through_the_second_provider_when_the_first_refuses() -> None:
    async with FakeTwilio() as twilio, FakeAfricasTalking() as at:
        twilio.fail_next(400, 21408, "Permission to send an SMS has not been enabled")
        chain = FailoverProvider([twilio_provider(twilio), provider(at)])
        sent = await chain.send(PHONE, "hello", CALLBACK)

    assert chain.name == "twilio,africastalking"
    assert (sent.provider, sent.failed_over_from) == ("africastalking", ("twilio",))
    assert len(twilio.messages) + len(at.messages) == 1


async def test_failover_never_follows_an_unknown_outcome() -> None:
    async with FakeTwilio() as twilio, FakeAfricasTalking() as at:
        twilio.drop_next()
        chain = FailoverProvider([twilio_provider(twilio), provider(at)])
        with pytest.raises(OutcomeUnknown):
            await chain.send(PHONE, "hello", CALLBACK)

    assert len(twilio.messages) == 1
    assert at.requests == []


async def test_failover_stops_at_an_opt_out() -> None:
    async with FakeTwilio() as twilio, FakeAfricasTalking() as at:
        at.refuse_next(406)
        chain = FailoverProvider([provider(at), twilio_provider(twilio)])
        with pytest.raises(ProviderRefused) as refused:
            await chain.send(PHONE, "hello", CALLBACK)

    assert refused.value.opted_out
    assert twilio.requests == []


async def test_all_refusing_gives_one_refusal_naming_each_final_only_if_all_are() -> None:
    async with FakeTwilio() as twilio, FakeAfricasTalking() as at:
        twilio.fail_next(503, 20503, "Service Unavailable")
        at.refuse_next(405)
        chain = FailoverProvider([twilio_provider(twilio), provider(at)])
        with pytest.raises(ProviderRefused) as refused:
            await chain.send(PHONE, "hello", CALLBACK)

    assert str(refused.value) == (
        "twilio: Twilio error 20503: Service Unavailable; "
        "africastalking: Africa's Talking refused: 405 InsufficientBalance"
    )
    assert not refused.value.permanent  # Twilio's 503 may pass: the message is redelivered


async def test_a_short_retry_after_is_waited_out_then_the_same_provider_sends() -> None:
    async with FakeTwilio() as twilio, FakeAfricasTalking() as at:
        at.fail_next(429, "Too Many Requests", retry_after="1")
        chain = FailoverProvider([provider(at), twilio_provider(twilio)], max_wait=5)
        sent = await chain.send(PHONE, "hello", CALLBACK)

    assert (sent.provider, sent.failed_over_from) == ("africastalking", ())
    first, second = at.requests
    assert (first.status, second.status) == (429, 201)
    assert second.at - first.at >= 1.0
    assert twilio.requests == []


async def test_a_retry_after_longer_than_the_bound_goes_to_the_next_provider() -> None:
    async with FakeTwilio() as twilio, FakeAfricasTalking() as at:
        at.fail_next(429, "Too Many Requests", retry_after="3600")
        chain = FailoverProvider([provider(at), twilio_provider(twilio)], max_wait=5)
        sent = await chain.send(PHONE, "hello", CALLBACK)

    assert (sent.provider, sent.failed_over_from) == ("twilio", ("africastalking",))
    assert len(at.requests) == 1
    assert len(twilio.messages) == 1 and at.messages == []
