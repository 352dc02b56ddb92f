"""NotifyPatient and SmsReceipt: send each report's SMS once, follow its delivery.

Sending once rests on the `notifications` record, claimed before the provider is called
(see `adapters.Notifications`): a duplicate message finds the claim and waits for, or
settles on, whatever the first attempt did.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from contracts.v1 import NotifyPatient, ReportStatus, SmsReceipt, utcnow
from services.infra import report_status, second_check, twilio
from services.infra.audit import SYSTEM, Audit
from services.infra.crash_points import crash_point
from services.infra.documents import (
    AuditOutcome,
    NotificationDocument,
    NotificationStatus,
    ReportDocument,
)
from services.infra.errors import PermanentError, ReportNotFoundError
from services.infra.metrics import SMS
from services.infra.opt_outs import Keyword, OptOuts, not_sent_reason
from services.infra.release_rules import ReleaseRuleStore
from services.infra.service import Resources
from services.notify import check_sms, logic, quiet_hours, sms_text
from services.notify.adapters import Notifications
from services.notify.providers import OutcomeUnknown, ProviderRefused, SmsProvider

log = structlog.get_logger()


class NotificationPendingError(Exception):
    """A receipt arrived before its notification was stored; retried."""


class NotifyHandlers:
    def __init__(self, resources: Resources, provider: SmsProvider) -> None:
        self._reports = resources.reports
        self._settings = resources.settings
        self._provider = provider
        self._notifications = Notifications(resources.db)
        self._rules = ReleaseRuleStore(resources.db)
        self._audit = Audit(resources.db)
        self._opt_outs = OptOuts(resources.db)
        self._quiet = quiet_hours.parse(self._settings.quiet_hours, self._settings.time_zone)

    # --- NotifyPatient --------------------------------------------------------------------

    async def notify_patient(self, message: NotifyPatient) -> None:
        await self.dispatch(message.report_id, message.request_id, deferrable=True)

    async def dispatch(
        self, report_id: str, request_id: str | None, *, deferrable: bool = False
    ) -> None:
        """Send what a NotifyPatient asks for; `deferrable`: during quiet hours, hold it for
        the quiet-hours loop (`quiet_scheduler`), which calls this again when they end."""
        report = await self._reports.get(report_id)
        status = ReportStatus(report["status"])
        if request_id:
            if not (deferrable and await self._deferred(report, request_id)):
                await self._text_again(report, request_id)
            return
        if report_status.is_past(status, ReportStatus.NOTIFIED):
            # Already notified (or failed/superseded): notify is the last command, nothing
            # to re-publish.
            log.info("notify.already_done", report_id=report["_id"], status=status.value)
            return
        if status not in logic.SENDABLE:
            # Waiting or not yet converted: releasing it sends a new NotifyPatient.
            log.warning("notify.not_ready", report_id=report["_id"], status=status.value)
            return
        if status is ReportStatus.CONVERTED and await self._waits(report):
            return
        if deferrable and await self._deferred(report, None):
            return
        await self._text(report)

    async def _deferred(self, report: ReportDocument, request_id: str | None) -> bool:
        """Whether quiet hours hold this SMS back (it is then stored as due when they end)."""
        now = utcnow()
        due = quiet_hours.quiet_until(now, self._quiet)
        if due is None:
            return False
        await self._reports.defer_sms(report["_id"], due, now, request_id)
        detail = {"until": due.isoformat(), "quiet_hours": str(self._quiet)}
        await self._audit.write(SYSTEM, "sms.deferred", report["_id"], detail)
        log.info("notify.quiet_hours", report_id=report["_id"], until=due.isoformat())
        return True

    async def _text_again(self, report: ReportDocument, request_id: str) -> None:
        """Staff asked for a new SMS (a resend, a new link): once per request."""
        status = ReportStatus(report["status"])
        if status not in report_status.TEXTABLE_AGAIN:
            # Withdrawn or replaced since the request: nothing to send.
            log.warning("notify.request_dropped", report_id=report["_id"], status=status.value)
            return
        await self._text(report, request_id)

    async def _text(self, report: ReportDocument, request_id: str | None = None) -> None:
        phone = str((report.get("patient") or {}).get("phone") or "")
        if not logic.is_e164(phone):
            await self._audited("sms.failed", report, {"error": "no valid phone number"})
            raise PermanentError("the patient's phone number is missing or not a valid number")
        if await self._opted_out(report, phone):
            return
        notification = await self._claim(report, phone, request_id)
        if notification is not None:
            await self._send(report, notification["_id"], phone)

    async def _opted_out(self, report: ReportDocument, phone: str) -> bool:
        """A number that opted out gets no SMS; the report says so, with the date."""
        opt_out = await self._opt_outs.opted_out(phone)
        if opt_out is None:
            return False
        reason = not_sent_reason(opt_out)
        detail = {"error": reason, "opted_out_at": opt_out["at"].isoformat()}
        await self._audited("sms.not_sent", report, detail)
        await self._reports.fail(report["_id"], reason)
        log.info("notify.opted_out", report_id=report["_id"])
        return True

    async def _waits(self, report: ReportDocument) -> bool:
        """Whether the release gate stops a converted report (it is then moved to wait)."""
        rules = await self._rules.get(report["lab_id"])
        wait = logic.release_gate(report, rules, utcnow())
        if wait is None:
            return False
        if await self._reports.advance(report, wait.status, fields=wait.fields, reason=wait.reason):
            log.info("notify.report_waits", report_id=report["_id"], status=wait.status.value)
        return True

    async def _claim(
        self, report: ReportDocument, phone: str, request_id: str | None
    ) -> NotificationDocument | None:
        """The notification record this attempt owns, or None when there is nothing to send."""
        key = logic.notification_key(report, request_id)
        claimed = await self._notifications.claim(key, phone, self._provider.name)
        while claimed is None:
            existing = await self._notifications.get(key)
            match logic.existing_claim(existing, utcnow()):
                case logic.ExistingClaim.SENT:
                    log.info("notify.already_sent", report_id=report["_id"])
                    await self._reports.advance(report, ReportStatus.NOTIFIED)
                    return None
                case logic.ExistingClaim.UNKNOWN:
                    raise PermanentError(logic.OUTCOME_UNKNOWN_REASON)
                case logic.ExistingClaim.FAILED_AFTER_SENDING:
                    return None
                case logic.ExistingClaim.REFUSED | logic.ExistingClaim.STALE:
                    # Nothing reached the provider. None when another worker re-claimed it
                    # first: look again.
                    claimed = await self._notifications.reclaim(
                        existing, phone, self._provider.name
                    )
                case logic.ExistingClaim.IN_PROGRESS:
                    await asyncio.sleep(logic.CLAIM_POLL_SECONDS)
                case logic.ExistingClaim.ABANDONED:
                    # The provider may or may not have the SMS. (False when the claim came
                    # back to life since it was read: look again.)
                    if await self._notifications.mark_abandoned(existing):
                        log.error("notify.outcome_unknown", report_id=report["_id"])
                        raise PermanentError(logic.OUTCOME_UNKNOWN_REASON)
        return claimed

    async def _send(self, report: ReportDocument, notification_id: str, phone: str) -> None:
        async with self._notifications.keep_alive(notification_id):
            try:
                link = logic.access_link(
                    self._settings.public_base_url,
                    utcnow(),
                    self._settings.access_link_ttl_hours,
                )
                check_sms.record_check(link.access, self._settings, report)
                await self._reports.set_access(report["_id"], link.access)
                updated = await self._earlier_version_texted(report)
                language = sms_text.sms_language(report, self._settings.default_language)
                body = check_sms.sms_body(
                    second_check.check_of(link.access),
                    self._settings.lab_name,
                    link.url,
                    updated=updated,
                    until=sms_text.sms_date(link.access["expires_at"], language),
                    language=language,
                )
                sms_text.log_measure(report["_id"], language, body)
                owned = await self._notifications.start_sending(notification_id)
            except BaseException:
                # Nothing reached the provider: let the next attempt re-claim.
                await self._notifications.release(notification_id, "failed before sending")
                raise
            if not owned:
                # This attempt stalled and another took the claim over: that one sends.
                log.warning("notify.claim_lost", report_id=report["_id"])
                return
            try:
                callback = twilio.status_callback_url(self._settings.public_base_url)
                sent = await self._provider.send(phone, body, callback)
            except ProviderRefused as error:
                await self._notifications.release(notification_id, error.reason)
                if error.opted_out:
                    # Opted out with the provider itself: recorded like a STOP reply.
                    await self._opt_outs.record(
                        phone, Keyword.STOP, utcnow(), source="provider", word=error.code
                    )
                    await self._opted_out(report, phone)
                    return
                refused = {"provider": self._provider.name, "error": error.reason}
                await self._audited("sms.failed", report, refused | {"final": error.permanent})
                log.warning(
                    "notify.provider_refused",
                    report_id=report["_id"],
                    http_status=error.http_status,
                    code=error.code,
                )
                if error.permanent:
                    raise PermanentError(f"SMS provider refused the message: {error}") from error
                raise
            except OutcomeUnknown as error:
                await self._notifications.mark_unknown(notification_id, str(error))
                unknown = {"provider": self._provider.name, "error": str(error)[:300]}
                await self._audited("sms.outcome_unknown", report, unknown)
                log.error("notify.outcome_unknown", report_id=report["_id"], error=str(error))
                raise PermanentError(logic.OUTCOME_UNKNOWN_REASON) from error
            except BaseException as error:
                # Anything else (a bug, a cancellation) may have struck mid-request.
                await self._notifications.mark_unknown(notification_id, type(error).__name__)
                raise
        crash_point("notify.after_sms_accepted")  # the fault tests' mid-SMS death
        await self._notifications.record_sent(notification_id, sent)
        ids = {"provider": sent.provider, "provider_message_id": sent.provider_message_id}
        if sent.failed_over_from:  # the providers before it refused the SMS
            ids["failed_over_from"] = ",".join(sent.failed_over_from)
        await self._audited("sms.sent", report, {"notification_id": notification_id, **ids})
        log.info(
            "notify.sms_sent",
            report_id=report["_id"],
            provider=sent.provider,
            provider_message_id=sent.provider_message_id,
        )
        await self._reports.advance(report, ReportStatus.NOTIFIED)

    async def _audited(self, action: str, report: ReportDocument, detail: dict[str, Any]) -> None:
        """An SMS sent, or one that failed, in the audit trail (never the number or the text)."""
        outcome = AuditOutcome.SUCCESS if action == "sms.sent" else AuditOutcome.FAILURE
        await self._audit.write(SYSTEM, action, report["_id"], detail, outcome=outcome)
        SMS.labels(action.removeprefix("sms.")).inc()

    async def _earlier_version_texted(self, report: ReportDocument) -> bool:
        """Whether the patient may have had an SMS for an older version of this report."""
        if report.get("version", 1) <= 1:
            return False
        earlier = [
            v["_id"]
            for v in await self._reports.versions(report)
            if v["version"] < report["version"]
        ]
        return await self._notifications.maybe_sent(earlier)

    async def give_up(self, message: NotifyPatient, reason: str) -> None:
        await self._reports.fail(message.report_id, reason)

    # --- SmsReceipt -----------------------------------------------------------------------

    async def sms_receipt(self, message: SmsReceipt) -> None:
        notification = await self._notifications.find_by_provider_message(
            message.provider, message.provider_message_id
        )
        if notification is None:
            # A fast provider can call back before the send was recorded: wait, then retry.
            await asyncio.sleep(1)
            raise NotificationPendingError("no notification for this message id yet")
        new_status = logic.notification_status_for(message.status)
        error = logic.receipt_error(message.status, message.error_code)
        if not await self._notifications.apply_receipt(notification["_id"], new_status, error):
            # Out of order ("sent" after "delivered") or a second final word: keep the first.
            log.info(
                "notify.receipt_ignored",
                provider_message_id=message.provider_message_id,
                status=message.status,
            )
            return
        log.info(
            "notify.receipt",
            report_id=notification["report_id"],
            provider_message_id=message.provider_message_id,
            status=message.status,
            error_code=message.error_code,
        )
        # A texted one-time code's receipt says nothing about the report's own SMS.
        if new_status != NotificationStatus.SENT and not check_sms.is_code(notification):
            await self._settle_report(notification["report_id"], new_status, message)

    async def _settle_report(
        self, report_id: str, new_status: NotificationStatus, message: SmsReceipt
    ) -> None:
        """A final receipt moves the report to delivered, or to failed with the carrier's word."""
        try:
            report = await self._reports.get(report_id)
        except ReportNotFoundError:
            return
        if ReportStatus(report["status"]) in logic.SENDABLE:
            # The receipt overtook the sender's own status update: the SMS evidently went.
            await self._reports.advance(report, ReportStatus.NOTIFIED)
            report = await self._reports.get(report_id)
        if ReportStatus(report["status"]) is not ReportStatus.NOTIFIED:
            return
        if new_status == NotificationStatus.DELIVERED:
            await self._reports.advance(report, ReportStatus.DELIVERED)
        else:
            reason = logic.undelivered_reason(message.status, message.error_code)
            await self._reports.advance(
                report, ReportStatus.FAILED, fields={"failure_reason": reason}, reason=reason
            )

    async def receipt_given_up(self, message: SmsReceipt, reason: str) -> None:
        # A receipt names no report: nothing to fail; leave a trace for operators.
        log.error(
            "notify.receipt_dropped",
            provider=message.provider,
            provider_message_id=message.provider_message_id,
            reason=reason,
        )
