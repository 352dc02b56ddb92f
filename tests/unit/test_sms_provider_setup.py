"""Choosing SMS providers, Africa's Talking's protocol words, and how long notify rides out
a provider outage: pure parts, no servers."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import pytest

from contracts import topology
from contracts.v1 import utcnow
from services.infra import africastalking
from services.infra.consumer import retry_delay
from services.infra.settings import Settings
from services.notify.provider_setup import provider_names
from services.notify.providers import ProviderRefused, retry_after_seconds


def test_a_comma_separated_setting_names_the_providers_in_failover_order() -> None:
    assert provider_names("twilio") == ["twilio"]
    assert provider_names(" Twilio , africastalking ") == ["twilio", "africastalking"]


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [("", "names no SMS provider"), ("twilio,vonage", "'vonage'"), ("twilio,twilio", "twice")],
)
def test_a_setting_naming_no_unknown_or_repeated_providers_is_refused(
    setting: str, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        provider_names(setting)


def test_sms_providers_and_the_older_sms_provider_variable_both_choose_providers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RESULTFLOW_SMS_PROVIDER", "twilio")
    assert Settings().sms_provider == "twilio"
    monkeypatch.setenv("RESULTFLOW_SMS_PROVIDERS", "twilio,africastalking")
    assert Settings().sms_provider == "twilio,africastalking"


def test_the_africastalking_secrets_stay_out_of_the_settings_repr() -> None:
    shown = repr(
        Settings(africastalking_api_key="atsk_key", africastalking_callback_secret="cb-secret")
    )
    assert "atsk_key" not in shown and "cb-secret" not in shown


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    in_ten = format_datetime(utcnow() + timedelta(seconds=10), usegmt=True)
    assert 8.0 <= (retry_after_seconds(in_ten) or 0.0) <= 10.0
    past = format_datetime(utcnow() - timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(past) == 0.0


def test_a_refusal_is_final_for_a_4xx_unless_told_otherwise() -> None:
    assert ProviderRefused("bad number", http_status=400).permanent
    assert not ProviderRefused("too many", http_status=429).permanent
    assert not ProviderRefused("no connection", code="connection").permanent
    assert ProviderRefused("no balance", code="405", final=True).permanent
    assert ProviderRefused("opted out", code="21610").opted_out
    assert ProviderRefused("blacklisted", code="406", opted_out=True).opted_out


@pytest.mark.parametrize(
    ("status", "receipt"),
    [
        ("Sent", "sent"),
        ("Submitted", "sent"),
        ("Buffered", "sent"),
        ("Success", "delivered"),
        ("Failed", "undelivered"),
        ("Rejected", "failed"),
        ("Whatever", None),
    ],
)
def test_africastalking_delivery_statuses_map_onto_receipts(
    status: str, receipt: str | None
) -> None:
    assert africastalking.receipt_status(status) == receipt


def test_the_delivery_report_secret_must_match_exactly_and_exist() -> None:
    assert africastalking.secret_valid("s3cret", "s3cret")
    assert not africastalking.secret_valid("s3cret", "s3cre")
    assert not africastalking.secret_valid("", "")
    url = africastalking.delivery_report_url("https://lab.example/", "s3cret")
    assert url == "https://lab.example/webhooks/africastalking/delivery/s3cret"


def test_every_provider_down_for_a_minute_is_ridden_out_before_a_report_fails() -> None:
    backoff = Settings().sms_retry_backoff_seconds
    waits = [retry_delay(attempt, backoff) for attempt in range(1, topology.DELIVERY_LIMIT)]
    assert sum(waits) >= 60
