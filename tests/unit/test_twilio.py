"""Twilio's protocol: request signatures and what its statuses mean to us."""

from __future__ import annotations

from services.infra import twilio


def test_twilio_signature_matches_twilios_documented_example() -> None:
    # The worked example of https://www.twilio.com/docs/usage/webhooks/webhooks-security
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"

    assert twilio.signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    # Order of the parameters does not matter; they are sorted.
    assert (
        twilio.signature("12345", url, list(reversed(params.items())))
        == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )


def test_a_tampered_callback_or_wrong_token_fails_signature_validation() -> None:
    url = "https://lab.example/webhooks/twilio/status"
    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    signature = twilio.signature("secret", url, params)

    assert twilio.signature_valid("secret", url, params, signature)
    assert not twilio.signature_valid(
        "secret", url, {**params, "MessageStatus": "failed"}, signature
    )
    assert not twilio.signature_valid("other", url, params, signature)
    assert not twilio.signature_valid("secret", url + "x", params, signature)
    assert not twilio.signature_valid("secret", url, params, None)
    assert not twilio.signature_valid("", url, params, signature)


def test_twilio_statuses_map_onto_receipt_statuses() -> None:
    assert twilio.receipt_status("delivered") == "delivered"
    assert twilio.receipt_status("sending") == "queued"
    assert twilio.receipt_status("read") == "delivered"
    assert twilio.receipt_status("receiving") is None
