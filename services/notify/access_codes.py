"""SendAccessCode: text a one-time code to the patient whose link asks for one.

The gateway asks (the patient pressed "Text me a code"); notify makes the code (6 digits
from the CSPRNG), stores its keyed hash for `second_check.CODE_TTL` (`AccessCodes.store`)
and texts it through the same provider, under the same never-twice claim as every SMS: one
`notifications` record per request ("code:<request id>"), so a redelivered request sends
nothing new. A code SMS that fails never fails the report (its link SMS went already); the
patient can ask again, and the audit trail shows what happened.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from contracts.v1 import ReportStatus, SendAccessCode, utcnow
from services.infra import second_check, twilio
from services.infra.access_codes import AccessCodes
from services.infra.audit import SYSTEM, Audit
from services.infra.documents import AuditOutcome, NotificationDocument, ReportDocument
from services.infra.errors import ReportNotFoundError
from services.infra.opt_outs import Keyword, OptOuts
from services.infra.service import Resources
from services.notify import check_sms, logic, sms_text
from services.notify.adapters import Notifications
from services.notify.providers import OutcomeUnknown, ProviderRefused, SmsProvider

log = structlog.get_logger()

PURPOSE = "access_code"  # in the audit trail's detail
# A withdrawn or replaced report's link opens nothing: no code for it.
CLOSED = frozenset({ReportStatus.WITHDRAWN, ReportStatus.SUPERSEDED})


class AccessCodeSender:
    def __init__(self, resources: Resources, provider: SmsProvider) -> None:
        self._reports = resources.reports
        self._settings = resources.settings
        self._provider = provider
        self._notifications = Notifications(resources.db)
        self._codes = AccessCodes(resources.db)
        self._opt_outs = OptOuts(resources.db)
        self._audit = Audit(resources.db)

    async def send_access_code(self, message: SendAccessCode) -> None:
        try:
            report = await self._reports.get(message.report_id)
        except ReportNotFoundError:
            log.warning("access_code.no_report", report_id=message.report_id)
            return
        access = report.get("access")
        if access is None or second_check.check_of(access) is not second_check.SecondCheck.SMS_CODE:
            log.warning("access_code.not_asked", report_id=report["_id"])
            return
        if report["status"] in CLOSED:
            log.warning("access_code.report_closed", report_id=report["_id"])
            return
        phone = str((report.get("patient") or {}).get("phone") or "")
        if not logic.is_e164(phone):
            await self._audited("sms.failed", report, {"error": "no valid phone number"})
            return
        opt_out = await self._opt_outs.opted_out(phone)
        if opt_out is not None:
            detail = {"opted_out_at": opt_out["at"].isoformat()}
            await self._audited("sms.not_sent", report, detail)
            return
        key = {
            "report_id": report["_id"],
            "version": report.get("version", 1),
            "purpose": check_sms.code_purpose(message.request_id),
        }
        claimed = await self._claim(key, phone)
        if claimed is not None:
            await self._text(report, access["token_hash"], message.request_id, claimed, phone)

    async def _claim(self, key: dict[str, Any], phone: str) -> NotificationDocument | None:
        """This request's notification record, owned by this attempt; None when the request
        was handled already (sent, or maybe sent: never twice)."""
        claimed = await self._notifications.claim(key, phone, self._provider.name)
        while claimed is None:
            existing = await self._notifications.get(key)
            match logic.existing_claim(existing, utcnow()):
                case logic.ExistingClaim.REFUSED | logic.ExistingClaim.STALE:
                    claimed = await self._notifications.reclaim(
                        existing, phone, self._provider.name
                    )
                case logic.ExistingClaim.IN_PROGRESS:
                    await asyncio.sleep(logic.CLAIM_POLL_SECONDS)
                case logic.ExistingClaim.ABANDONED:
                    await self._notifications.mark_abandoned(existing)
                    return None
                case _:
                    log.info("access_code.already_handled", report_id=key["report_id"])
                    return None
        return claimed

    async def _text(
        self,
        report: ReportDocument,
        link_hash: str,
        request_id: str,
        notification: NotificationDocument,
        phone: str,
    ) -> None:
        notification_id = notification["_id"]
        async with self._notifications.keep_alive(notification_id):
            try:
                code = second_check.new_code()
                code_hash = second_check.keyed_hash(
                    self._settings.second_check_secret, "code", code
                )
                expires_at = utcnow() + second_check.CODE_TTL
                await self._codes.store(report["_id"], request_id, code_hash, link_hash, expires_at)
                language = sms_text.sms_language(report, self._settings.default_language)
                body = check_sms.code_body(self._settings.lab_name, code, language=language)
                owned = await self._notifications.start_sending(notification_id)
            except BaseException:
                await self._notifications.release(notification_id, "failed before sending")
                raise
            if not owned:
                return  # another attempt took the stalled claim over: that one sends
            try:
                callback = twilio.status_callback_url(self._settings.public_base_url)
                sent = await self._provider.send(phone, body, callback)
            except ProviderRefused as error:
                await self._notifications.release(notification_id, error.reason)
                if error.opted_out:
                    await self._opt_outs.record(
                        phone, Keyword.STOP, utcnow(), source="provider", word=error.code
                    )
                await self._audited("sms.failed", report, {"error": error.reason})
                log.warning("access_code.refused", report_id=report["_id"], code=error.code)
                if error.permanent or error.opted_out:
                    return
                raise
            except OutcomeUnknown as error:
                await self._notifications.mark_unknown(notification_id, str(error)[:300])
                await self._audited("sms.outcome_unknown", report, {"error": str(error)[:300]})
                return
            except BaseException as error:
                await self._notifications.mark_unknown(notification_id, type(error).__name__)
                raise
        await self._notifications.record_sent(notification_id, sent)
        ids = {"provider": sent.provider, "provider_message_id": sent.provider_message_id}
        await self._audited("sms.sent", report, {"notification_id": notification_id, **ids})
        log.info("access_code.sent", report_id=report["_id"], **ids)

    async def _audited(self, action: str, report: ReportDocument, detail: dict[str, Any]) -> None:
        """Like every SMS, in the audit trail: never the number, the text or the code."""
        outcome = AuditOutcome.SUCCESS if action == "sms.sent" else AuditOutcome.FAILURE
        detail = {"purpose": PURPOSE, **detail}
        await self._audit.write(SYSTEM, action, report["_id"], detail, outcome=outcome)

    async def give_up(self, message: SendAccessCode, reason: str) -> None:
        # The report's own SMS went already: a code that could not be texted fails nothing.
        log.error("access_code.given_up", report_id=message.report_id, reason=reason)
