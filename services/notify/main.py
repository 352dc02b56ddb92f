"""The notify service: `faststream run --factory services.notify.main:create_app`."""

from __future__ import annotations

from faststream import FastStream

from contracts.v1 import NotifyPatient, SendAccessCode, SmsReceipt
from services.infra.consumer import subscribe
from services.infra.service import Resources, make_app
from services.notify.access_codes import AccessCodeSender
from services.notify.handlers import NotifyHandlers
from services.notify.provider_setup import make_provider
from services.notify.quiet_scheduler import QuietHoursScheduler
from services.notify.reminders import ReminderScheduler
from services.notify.scheduler import ReleaseScheduler


def create_app(resources: Resources | None = None) -> FastStream:
    resources = resources or Resources.create("notify")
    provider = make_provider(resources.settings, resources.db)
    handlers = NotifyHandlers(resources, provider)
    subscribe(
        resources,
        NotifyPatient,
        on_give_up=handlers.give_up,
        retry_backoff=resources.settings.sms_retry_backoff_seconds,
    )(handlers.notify_patient)
    subscribe(resources, SmsReceipt, on_give_up=handlers.receipt_given_up)(handlers.sms_receipt)
    codes = AccessCodeSender(resources, provider)
    subscribe(resources, SendAccessCode, on_give_up=codes.give_up)(codes.send_access_code)
    scheduler = ReleaseScheduler(resources, resources.settings.release_poll_seconds)
    reminders = ReminderScheduler(resources, provider)
    quiet = QuietHoursScheduler(resources, handlers)
    return make_app(
        resources,
        on_startup=[scheduler.start, reminders.start, quiet.start],
        on_shutdown=[scheduler.stop, reminders.stop, quiet.stop],
    )
