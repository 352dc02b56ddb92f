"""The notify stage's store: the `notifications` record whose status is the send-once claim.
(SMS providers are in `providers`; the report's access link is written by the `reports`
owner, `services.infra.reports`.)"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import structlog
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from contracts.v1 import utcnow
from services.infra import documents
from services.infra.database import Database
from services.infra.documents import MAYBE_SENT, NotificationDocument
from services.infra.documents import NotificationStatus as N
from services.notify import logic
from services.notify.providers import SentSms

log = structlog.get_logger()

_RECORD_SENT_TRIES = 5


class Notifications:
    """The `notifications` collection: one record per report version and purpose, whose
    `status` is the claim that keeps an SMS from going out twice.

    An attempt claims the record ("claimed"), marks it "sending" just before it calls the
    provider, and renews its heartbeat throughout, so another worker holding a duplicate
    message can tell an attempt still running (wait for it) from one that died before the
    provider call (take the claim over and send) or during it (outcome unknown: never guess,
    send nothing). Every change is conditional on the status it moves from.
    """

    def __init__(self, db: Database, *, heartbeat_every: timedelta = logic.HEARTBEAT_EVERY) -> None:
        self._collection = documents.notifications(db)
        self._heartbeat_every = heartbeat_every

    async def claim(
        self, key: dict[str, Any], to: str, provider: str
    ) -> NotificationDocument | None:
        """Create the record as this attempt's claim; None when one already exists."""
        now = utcnow()
        record: NotificationDocument = {
            "_id": uuid.uuid4().hex,
            "report_id": key["report_id"],
            "version": key["version"],
            "purpose": key["purpose"],
            "to": to,
            "provider": provider,
            "status": N.CLAIMED,
            "provider_message_id": None,
            "error": None,
            "attempts": 1,
            "heartbeat_at": now,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._collection.insert_one(record)
        except DuplicateKeyError:
            return None
        return record

    async def get(self, key: dict[str, Any]) -> NotificationDocument:
        record = await self._collection.find_one(key)
        if record is None:  # pragma: no cover - records are never deleted
            raise RuntimeError("notification record vanished")
        return record

    async def maybe_sent(self, report_ids: list[str]) -> bool:
        """Whether an SMS for any of these reports left (or may have left) the provider."""
        if not report_ids:
            return False
        found = await self._collection.find_one(
            {
                "report_id": {"$in": report_ids},
                "status": {"$in": list(MAYBE_SENT)},
            }
        )
        return found is not None

    async def find_by_provider_message(
        self, provider: str, provider_message_id: str
    ) -> NotificationDocument | None:
        return await self._collection.find_one(
            {"provider": provider, "provider_message_id": provider_message_id}
        )

    async def reclaim(
        self, record: NotificationDocument, to: str, provider: str
    ) -> NotificationDocument | None:
        """Claim, for this attempt, a record the provider refused or whose attempt died before
        calling the provider; None when another worker re-claimed it first."""
        if record["status"] == N.CLAIMED:  # only if its owner is still silent
            unchanged = {"status": N.CLAIMED, "heartbeat_at": record.get("heartbeat_at")}
        else:
            unchanged = {"status": N.FAILED, "refused": True}
        now = utcnow()
        return await self._collection.find_one_and_update(
            {"_id": record["_id"], **unchanged},
            {
                "$set": {
                    "status": N.CLAIMED,
                    "to": to,
                    "provider": provider,
                    "heartbeat_at": now,
                    "updated_at": now,
                },
                "$inc": {"attempts": 1},
            },
            return_document=ReturnDocument.AFTER,
        )

    @contextlib.asynccontextmanager
    async def keep_alive(self, notification_id: str) -> AsyncIterator[None]:
        """Renew the claim's heartbeat in the background for as long as the block runs."""
        task = asyncio.create_task(self._heartbeat(notification_id))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _heartbeat(self, notification_id: str) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_every.total_seconds())
            try:
                await self._collection.update_one(
                    {"_id": notification_id, "status": {"$in": list(logic.OWNED)}},
                    {"$set": {"heartbeat_at": utcnow()}},
                )
            except Exception:
                # A missed beat must not break the send it guards; the next one may work.
                log.warning("notify.heartbeat_failed", notification_id=notification_id)

    async def start_sending(self, notification_id: str) -> bool:
        """Mark the claim as talking to the provider, from which point a crash means the
        outcome is unknown; False when this attempt no longer owns the claim."""
        result = await self._collection.update_one(
            {"_id": notification_id, "status": N.CLAIMED},
            {"$set": {"status": N.SENDING, "heartbeat_at": utcnow(), "updated_at": utcnow()}},
        )
        return result.modified_count > 0

    async def release(self, notification_id: str, error: str) -> None:
        """Nothing reached the provider: give the claim up so a later attempt may re-claim."""
        await self._set_if_owned(
            notification_id,
            {"status": N.FAILED, "refused": True, "error": error},
            logic.OWNED,
        )

    async def mark_unknown(self, notification_id: str, error: str) -> None:
        """The provider may or may not have the SMS: never send it again."""
        await self._set_if_owned(notification_id, {"status": N.UNKNOWN, "error": error})

    async def mark_abandoned(self, record: NotificationDocument) -> bool:
        """Mark a claim whose attempt died mid-send as unknown; False when its heartbeat moved
        since `record` was read (the claim is alive after all)."""
        result = await self._collection.update_one(
            {
                "_id": record["_id"],
                "status": N.SENDING,
                "heartbeat_at": record.get("heartbeat_at"),
            },
            {
                "$set": {
                    "status": N.UNKNOWN,
                    "error": "interrupted while sending",
                    "updated_at": utcnow(),
                }
            },
        )
        return result.modified_count > 0

    async def record_sent(self, notification_id: str, sent: SentSms) -> None:
        # The SMS is out: try hard to record it, or a redelivery would call it unknown.
        fields = {
            "status": N.SENT,
            "provider": sent.provider,
            "provider_message_id": sent.provider_message_id,
            "provider_status": sent.status,
            "refused": False,
            "error": None,
        }
        for attempt in range(1, _RECORD_SENT_TRIES + 1):
            try:
                await self._set_if_owned(notification_id, {**fields, "sent_at": utcnow()})
                return
            except Exception:
                if attempt == _RECORD_SENT_TRIES:
                    raise
                await asyncio.sleep(0.5 * attempt)

    async def apply_receipt(self, notification_id: str, status: N, error: str) -> bool:
        """Move the record forward to a receipt's `status` (never back: "sent" after
        "delivered" changes nothing). True when the record holds `status` afterwards, also
        when an earlier copy of this receipt put it there, so a redelivered receipt still
        finishes its work on the report."""
        now = utcnow()
        fields: dict[str, Any] = {"status": status, "updated_at": now}
        if status in logic.NOT_DELIVERED:
            # It was sent: a failed receipt is no licence to send again.
            fields |= {"error": error, "refused": False}
        if status == N.DELIVERED:
            fields["delivered_at"] = now
        await self._collection.update_one(
            {"_id": notification_id, "status": {"$in": logic.statuses_before(status)}},
            {"$set": fields},
        )
        current = await self._collection.find_one({"_id": notification_id})
        return current is not None and current["status"] == status

    async def _set_if_owned(
        self,
        notification_id: str,
        fields: dict[str, Any],
        statuses: frozenset[N] = frozenset({N.SENDING}),
    ) -> None:
        """Change a record this attempt still owns (by default: while sending); stamps
        `updated_at`."""
        await self._collection.update_one(
            {"_id": notification_id, "status": {"$in": list(statuses)}},
            {"$set": {**fields, "updated_at": utcnow()}},
        )
