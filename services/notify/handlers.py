"""NotifyPatient and SmsReceipt: send each report's SMS once, follow its delivery.

Sending once rests on the `notifications` record (unique per report version and purpose),
claimed before the provider is called. While an attempt talks to the provider it renews the
claim's heartbeat, so another worker holding a duplicate message can tell an attempt still
running (wait for it) from one that died mid-send (outcome unknown: never guess, send
nothing, fail the report for a person to check).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta
from typing import Any

import structlog
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from contracts.v1 import NotifyPatient, ReportStatus, SmsReceipt, utcnow
from services.infra import report_status
from services.infra.consumer import PermanentError
from services.infra.service import Resources
from services.notify import logic
from services.notify.adapters import OutcomeUnknown, ProviderRefused, SentSms, SmsProvider

log = structlog.get_logger()

# Statuses from which the SMS may be sent.
SENDABLE = frozenset({ReportStatus.CONVERTED, ReportStatus.RELEASED})


class NotificationPendingError(Exception):
    """A receipt arrived before its notification was stored; retried."""


class NotifyHandlers:
    def __init__(
        self,
        resources: Resources,
        provider: SmsProvider,
        *,
        heartbeat_every: timedelta = timedelta(seconds=2),
        claim_stale_after: timedelta = timedelta(seconds=15),
    ) -> None:
        self._resources = resources
        self._db = resources.db
        self._reports = resources.reports
        self._settings = resources.settings
        self._provider = provider
        self._heartbeat_every = heartbeat_every
        self._claim_stale_after = claim_stale_after

    @property
    def status_callback_url(self) -> str:
        return f"{self._settings.public_base_url.rstrip('/')}/webhooks/twilio/status"

    # --- NotifyPatient --------------------------------------------------------------------

    async def notify_patient(self, message: NotifyPatient) -> None:
        report = await self._reports.get(message.report_id)
        status = ReportStatus(report["status"])
        if report_status.is_past(status, ReportStatus.NOTIFIED):
            # Already notified (or failed/superseded): notify is the last command, nothing
            # to re-publish.
            log.info("notify.already_done", report_id=report["_id"], status=status.value)
            return
        if status not in SENDABLE:
            # Held or not yet converted: releasing it sends a new NotifyPatient.
            log.warning("notify.not_ready", report_id=report["_id"], status=status.value)
            return
        phone = str((report.get("patient") or {}).get("phone") or "")
        if not logic.is_e164(phone):
            raise PermanentError("the patient's phone number is missing or not a valid number")

        notification = await self._claim(report, phone)
        if notification is None:
            return
        await self._send(report, notification, phone)

    async def _claim(self, report: dict[str, Any], phone: str) -> dict[str, Any] | None:
        """The notification record this attempt owns, or None when there is nothing to send."""
        now = utcnow()
        key = {
            "report_id": report["_id"],
            "version": report.get("version", 1),
            "purpose": logic.PURPOSE_RESULT_READY,
        }
        claim = {
            "_id": uuid.uuid4().hex,
            **key,
            "to": phone,
            "provider": self._provider.name,
            "status": logic.SENDING,
            "provider_message_id": None,
            "error": None,
            "attempts": 1,
            "heartbeat_at": now,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._db.notifications.insert_one(claim)
            return claim
        except DuplicateKeyError:
            pass

        while True:
            existing = await self._db.notifications.find_one(key)
            if existing is None:  # pragma: no cover - records are never deleted
                raise RuntimeError("notification record vanished")
            state = existing["status"]
            if state in logic.SENT_STATUSES:
                log.info("notify.already_sent", report_id=report["_id"])
                await self._reports.advance(report, ReportStatus.NOTIFIED)
                return None
            if state == logic.UNKNOWN:
                raise PermanentError(logic.OUTCOME_UNKNOWN_REASON)
            if state == logic.FAILED:
                if not existing.get("refused"):
                    # The provider took it and later reported it failed: the receipt
                    # handler has dealt with the report.
                    return None
                reclaimed = await self._db.notifications.find_one_and_update(
                    {"_id": existing["_id"], "status": logic.FAILED, "refused": True},
                    {
                        "$set": {
                            "status": logic.SENDING,
                            "to": phone,
                            "provider": self._provider.name,
                            "heartbeat_at": utcnow(),
                            "updated_at": utcnow(),
                        },
                        "$inc": {"attempts": 1},
                    },
                    return_document=ReturnDocument.AFTER,
                )
                if reclaimed is not None:
                    return reclaimed
                continue  # another worker re-claimed it first; look again
            # "sending": another attempt holds the claim. Wait while it is alive.
            heartbeat = existing.get("heartbeat_at")
            last_seen = heartbeat or existing.get("created_at")
            if last_seen is not None and utcnow() - last_seen < self._claim_stale_after:
                await asyncio.sleep(0.5)
                continue
            # The attempt died mid-send: the provider may or may not have the SMS. (Matching
            # the heartbeat read makes sure the claim did not come back to life meanwhile.)
            marked = await self._db.notifications.update_one(
                {"_id": existing["_id"], "status": logic.SENDING, "heartbeat_at": heartbeat},
                {
                    "$set": {
                        "status": logic.UNKNOWN,
                        "error": "interrupted while sending",
                        "updated_at": utcnow(),
                    }
                },
            )
            if marked.modified_count:
                log.error("notify.outcome_unknown", report_id=report["_id"])
                raise PermanentError(logic.OUTCOME_UNKNOWN_REASON)

    async def _send(self, report: dict[str, Any], notification: dict[str, Any], phone: str) -> None:
        notification_id = notification["_id"]
        heartbeat = asyncio.create_task(self._keep_claim(notification_id))
        try:
            try:
                now = utcnow()
                link = logic.access_link(
                    self._settings.public_base_url, now, self._settings.access_link_ttl_hours
                )
                body = logic.sms_body(self._settings.lab_name, link.url)
                # The hash is stored before the SMS leaves, so the link works the moment it
                # arrives; a retry after a refusal replaces it (that link was never sent).
                await self._db.reports.update_one(
                    {"_id": report["_id"]}, {"$set": {"access": link.access, "updated_at": now}}
                )
            except BaseException:
                # Nothing reached the provider: let the next attempt re-claim.
                await self._release(notification_id, "failed before sending")
                raise
            try:
                sent = await self._provider.send(phone, body, self.status_callback_url)
            except ProviderRefused as error:
                await self._release(notification_id, error.reason)
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
                await self._mark_unknown(notification_id, str(error))
                log.error("notify.outcome_unknown", report_id=report["_id"], error=str(error))
                raise PermanentError(logic.OUTCOME_UNKNOWN_REASON) from error
            except BaseException as error:
                # Anything else (a bug, a cancellation) may have struck mid-request.
                await self._mark_unknown(notification_id, type(error).__name__)
                raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await self._record_sent(notification_id, sent)
        log.info(
            "notify.sms_sent",
            report_id=report["_id"],
            provider=sent.provider,
            provider_message_id=sent.provider_message_id,
        )
        await self._reports.advance(report, ReportStatus.NOTIFIED)

    async def _keep_claim(self, notification_id: str) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_every.total_seconds())
            await self._db.notifications.update_one(
                {"_id": notification_id, "status": logic.SENDING},
                {"$set": {"heartbeat_at": utcnow()}},
            )

    async def _release(self, notification_id: str, error: str) -> None:
        await self._db.notifications.update_one(
            {"_id": notification_id, "status": logic.SENDING},
            {
                "$set": {
                    "status": logic.FAILED,
                    "refused": True,
                    "error": error,
                    "updated_at": utcnow(),
                }
            },
        )

    async def _mark_unknown(self, notification_id: str, error: str) -> None:
        await self._db.notifications.update_one(
            {"_id": notification_id, "status": logic.SENDING},
            {"$set": {"status": logic.UNKNOWN, "error": error, "updated_at": utcnow()}},
        )

    async def _record_sent(self, notification_id: str, sent: SentSms) -> None:
        # The SMS is out: try hard to record it, or a redelivery would call it unknown.
        for attempt in range(5):
            try:
                await self._db.notifications.update_one(
                    {"_id": notification_id, "status": logic.SENDING},
                    {
                        "$set": {
                            "status": logic.SENT,
                            "provider": sent.provider,
                            "provider_message_id": sent.provider_message_id,
                            "provider_status": sent.status,
                            "refused": False,
                            "error": None,
                            "sent_at": utcnow(),
                            "updated_at": utcnow(),
                        }
                    },
                )
                return
            except Exception:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))

    async def give_up(self, message: NotifyPatient, reason: str) -> None:
        await self._reports.fail(message.report_id, reason)

    # --- SmsReceipt -----------------------------------------------------------------------

    async def sms_receipt(self, message: SmsReceipt) -> None:
        notification = await self._db.notifications.find_one(
            {"provider": message.provider, "provider_message_id": message.provider_message_id}
        )
        if notification is None:
            # A fast provider can call back before the send was recorded: wait, then retry.
            await asyncio.sleep(1)
            raise NotificationPendingError("no notification for this message id yet")
        new_status = logic.notification_status_for(message.status)
        fields: dict[str, Any] = {"status": new_status, "updated_at": utcnow()}
        if new_status in (logic.UNDELIVERED, logic.FAILED):
            fields["error"] = f"{message.status} {message.error_code}".strip()
            fields["refused"] = False  # it was sent; a failed receipt is not a resend licence
        if new_status == logic.DELIVERED:
            fields["delivered_at"] = utcnow()
        await self._db.notifications.update_one(
            {"_id": notification["_id"], "status": {"$in": logic.statuses_before(new_status)}},
            {"$set": fields},
        )
        current = await self._db.notifications.find_one({"_id": notification["_id"]})
        if current is None or current["status"] != new_status:
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
        if new_status == logic.SENT:
            return
        report = await self._db.reports.find_one({"_id": notification["report_id"]})
        if report is None:
            return
        if ReportStatus(report["status"]) in SENDABLE:
            # The receipt overtook the sender's own status update: the SMS evidently went.
            await self._reports.advance(report, ReportStatus.NOTIFIED)
            report = await self._reports.get(report["_id"])
        if ReportStatus(report["status"]) is not ReportStatus.NOTIFIED:
            return
        if new_status == logic.DELIVERED:
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
