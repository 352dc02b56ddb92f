"""The notify service: `faststream run --factory services.notify.main:create_app`."""

from __future__ import annotations

from faststream import FastStream

from contracts.v1 import NotifyPatient, SmsReceipt
from services.infra.consumer import subscribe
from services.infra.service import Resources, make_app
from services.notify.adapters import OutboxProvider, SmsProvider, TwilioProvider
from services.notify.handlers import NotifyHandlers


def make_provider(resources: Resources) -> SmsProvider:
    settings = resources.settings
    if settings.sms_provider == "outbox":
        return OutboxProvider(resources.db)
    if settings.sms_provider == "twilio":
        return TwilioProvider(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            sender=settings.twilio_from,
            base_url=settings.twilio_base_url,
        )
    raise ValueError(f"unknown RESULTFLOW_SMS_PROVIDER {settings.sms_provider!r}")


def create_app(resources: Resources | None = None) -> FastStream:
    resources = resources or Resources.create("notify")
    handlers = NotifyHandlers(resources, make_provider(resources))
    subscribe(resources, NotifyPatient, on_give_up=handlers.give_up)(handlers.notify_patient)
    subscribe(resources, SmsReceipt, on_give_up=handlers.receipt_given_up)(handlers.sms_receipt)
    return make_app(resources)
