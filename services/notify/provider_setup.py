"""The SMS provider `RESULTFLOW_SMS_PROVIDER(S)` names: one, or several that fail over."""

from __future__ import annotations

from services.infra.database import Database
from services.infra.settings import Settings
from services.notify.africastalking import AfricasTalkingProvider
from services.notify.failover import FailoverProvider
from services.notify.providers import OutboxProvider, SmsProvider, TwilioProvider

KNOWN = ("outbox", "twilio", "africastalking")


def provider_names(setting: str) -> list[str]:
    """The providers a setting lists, in failover order ("twilio, africastalking")."""
    names = [name.strip().lower() for name in setting.split(",") if name.strip()]
    if not names:
        raise ValueError("RESULTFLOW_SMS_PROVIDER names no SMS provider")
    for name in names:
        if name not in KNOWN:
            raise ValueError(f"unknown RESULTFLOW_SMS_PROVIDER {name!r}")
    if len(set(names)) != len(names):
        raise ValueError("RESULTFLOW_SMS_PROVIDER names a provider twice")
    return names


def make_provider(settings: Settings, db: Database) -> FailoverProvider:
    """The providers, in order; with one, the failover only waits out its rate limits."""
    providers = [_one(name, settings, db) for name in provider_names(settings.sms_provider)]
    return FailoverProvider(providers, max_wait=settings.sms_rate_limit_max_wait_seconds)


def _one(name: str, settings: Settings, db: Database) -> SmsProvider:
    if name == "outbox":
        return OutboxProvider(db)
    if name == "twilio":
        return TwilioProvider(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            sender=settings.twilio_from,
            base_url=settings.twilio_base_url,
            timeout_seconds=settings.sms_request_timeout_seconds,
        )
    return AfricasTalkingProvider(
        username=settings.africastalking_username,
        api_key=settings.africastalking_api_key,
        sender=settings.africastalking_sender,
        base_url=settings.africastalking_base_url,
        timeout_seconds=settings.sms_request_timeout_seconds,
    )
