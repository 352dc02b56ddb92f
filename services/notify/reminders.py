"""The reminder scheduler: a loop in notify that sends one reminder SMS for a report whose
link is still unopened a configured number of days before it expires
(`RESULTFLOW_REMINDER_DAYS_BEFORE_EXPIRY`; 0 turns reminders off).

Every replica runs it. A report's reminder is claimed with one conditional update (its
`access.reminder_at`), and the SMS is a notification of its own purpose, unique per report
version: never more than one reminder per report version, whatever the replicas do. An
opted-out number gets none. The reminder carries a new link token to the same report, with
the same expiry; the first SMS's link keeps working too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from contracts.v1 import utcnow
from services.infra import second_check, twilio
from services.infra.audit import SYSTEM, Audit
from services.infra.documents import AuditOutcome, ReportDocument
from services.infra.metrics import SMS
from services.infra.opt_outs import OptOuts
from services.infra.periodic import Periodic
from services.infra.service import Resources
from services.infra.tokens import new_token, token_hash
from services.notify import check_sms, logic, quiet_hours, sms_text
from services.notify.adapters import Notifications
from services.notify.providers import ProviderRefused, SmsProvider

log = structlog.get_logger()

PURPOSE_REMINDER = "reminder"


class ReminderScheduler:
    def __init__(self, resources: Resources, provider: SmsProvider) -> None:
        self._settings = resources.settings
        self._reports = resources.reports
        self._provider = provider
        self._notifications = Notifications(resources.db)
        self._opt_outs = OptOuts(resources.db)
        self._audit = Audit(resources.db)
        self._quiet = quiet_hours.parse(self._settings.quiet_hours, self._settings.time_zone)
        self._loop = Periodic("reminder", self.tick, resources.settings.reminder_poll_seconds)

    @property
    def enabled(self) -> bool:
        return self._settings.reminder_days_before_expiry > 0

    async def tick(self, now: datetime | None = None) -> int:
        """One pass; how many reminders this replica sent."""
        if not self.enabled:
            return 0
        now = now or utcnow()
        if quiet_hours.quiet_until(now, self._quiet) is not None:
            return 0  # no reminder at night either: the first pass after quiet hours sends
        remind_from = now + timedelta(days=self._settings.reminder_days_before_expiry)
        sent = 0
        for report in await self._reports.due_reminders(now, remind_from):
            token = new_token()
            if not await self._reports.claim_reminder(
                report["_id"], now, remind_from, token_hash(token)
            ):
                continue  # another replica took it, or the patient opened it meanwhile
            sent += await self._remind(report, token)
        return sent

    async def _remind(self, report: ReportDocument, token: str) -> int:
        phone = str((report.get("patient") or {}).get("phone") or "")
        if not logic.is_e164(phone):
            return 0
        if (opt_out := await self._opt_outs.opted_out(phone)) is not None:
            detail = {"purpose": PURPOSE_REMINDER, "opted_out_at": opt_out["at"].isoformat()}
            await self._audited("sms.not_sent", report, detail)
            return 0
        key = {
            "report_id": report["_id"],
            "version": report.get("version", 1),
            "purpose": PURPOSE_REMINDER,
        }
        claimed = await self._notifications.claim(key, phone, self._provider.name)
        if claimed is None or not await self._notifications.start_sending(claimed["_id"]):
            return 0  # this version's reminder exists already
        url = f"{self._settings.public_base_url.rstrip('/')}/r/{token}"
        language = sms_text.sms_language(report, self._settings.default_language)
        until = sms_text.sms_date(report["access"]["expires_at"], language)
        check = second_check.check_of(report.get("access"))  # what the link's SMS said
        body = check_sms.reminder_body(
            check, self._settings.lab_name, url, until, language=language
        )
        sms_text.log_measure(report["_id"], language, body)
        callback = twilio.status_callback_url(self._settings.public_base_url)
        try:
            result = await self._provider.send(phone, body, callback)
        except ProviderRefused as error:
            await self._notifications.release(claimed["_id"], error.reason)
            await self._audited("sms.failed", report, {"purpose": PURPOSE_REMINDER})
            log.warning("reminder.refused", report_id=report["_id"], code=error.code)
            return 0
        except Exception as error:
            await self._notifications.mark_unknown(claimed["_id"], type(error).__name__)
            raise
        await self._notifications.record_sent(claimed["_id"], result)
        await self._audited("sms.reminder_sent", report, {"notification_id": claimed["_id"]})
        log.info("reminder.sent", report_id=report["_id"])
        return 1

    async def _audited(self, action: str, report: ReportDocument, detail: dict[str, str]) -> None:
        outcome = AuditOutcome.SUCCESS if action == "sms.reminder_sent" else AuditOutcome.FAILURE
        await self._audit.write(SYSTEM, action, report["_id"], detail, outcome=outcome)
        SMS.labels(action.removeprefix("sms.")).inc()

    async def start(self) -> None:
        if self.enabled:
            await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
