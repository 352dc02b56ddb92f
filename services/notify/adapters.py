"""The notify stage's outside world: the `notifications` record, the report's access link,
and the SMS providers (the development outbox and Twilio's REST API).

Every provider tells three outcomes apart, because "never send twice" depends on it:
a `SentSms` (the provider has the message), `ProviderRefused` (it definitely does not:
the connection never opened, or it answered with an error), and `OutcomeUnknown` (the
request may have reached it; sending again could mean a second SMS).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import aiohttp
import structlog
from pymongo import ReturnDocument
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from contracts.v1 import utcnow
from services.infra.database import Database
from services.infra.settings import Settings
from services.notify import logic

log = structlog.get_logger()


@dataclass(frozen=True)
class SentSms:
    provider: str
    provider_message_id: str
    status: str


class ProviderRefused(Exception):
    """The provider definitely did not take the message; sending again is safe."""

    def __init__(self, reason: str, *, http_status: int | None = None, code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status
        self.code = code

    @property
    def permanent(self) -> bool:
        """A 4xx answer (bad credentials, bad number) will not change by retrying."""
        status = self.http_status
        return status is not None and 400 <= status < 500 and status not in (408, 409, 429)


class OutcomeUnknown(Exception):
    """The request may have reached the provider: the SMS may or may not have been sent."""


# --- persistence -----------------------------------------------------------------------------

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
        self._collection = db.notifications
        self._heartbeat_every = heartbeat_every

    async def claim(self, key: dict[str, Any], to: str, provider: str) -> dict[str, Any] | None:
        """Create the record as this attempt's claim; None when one already exists."""
        now = utcnow()
        record = {
            "_id": uuid.uuid4().hex,
            **key,
            "to": to,
            "provider": provider,
            "status": logic.CLAIMED,
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

    async def get(self, key: dict[str, Any]) -> dict[str, Any]:
        record = await self._collection.find_one(key)
        if record is None:  # pragma: no cover - records are never deleted
            raise RuntimeError("notification record vanished")
        return record

    async def find_by_provider_message(
        self, provider: str, provider_message_id: str
    ) -> dict[str, Any] | None:
        return await self._collection.find_one(
            {"provider": provider, "provider_message_id": provider_message_id}
        )

    async def reclaim(
        self, record: dict[str, Any], to: str, provider: str
    ) -> dict[str, Any] | None:
        """Claim, for this attempt, a record the provider refused or whose attempt died before
        calling the provider; None when another worker re-claimed it first."""
        if record["status"] == logic.CLAIMED:  # only if its owner is still silent
            unchanged = {"status": logic.CLAIMED, "heartbeat_at": record.get("heartbeat_at")}
        else:
            unchanged = {"status": logic.FAILED, "refused": True}
        now = utcnow()
        return await self._collection.find_one_and_update(
            {"_id": record["_id"], **unchanged},
            {
                "$set": {
                    "status": logic.CLAIMED,
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
            {"_id": notification_id, "status": logic.CLAIMED},
            {"$set": {"status": logic.SENDING, "heartbeat_at": utcnow(), "updated_at": utcnow()}},
        )
        return result.modified_count > 0

    async def release(self, notification_id: str, error: str) -> None:
        """Nothing reached the provider: give the claim up so a later attempt may re-claim."""
        await self._set_if_owned(
            notification_id,
            {"status": logic.FAILED, "refused": True, "error": error},
            logic.OWNED,
        )

    async def mark_unknown(self, notification_id: str, error: str) -> None:
        """The provider may or may not have the SMS: never send it again."""
        await self._set_if_owned(notification_id, {"status": logic.UNKNOWN, "error": error})

    async def mark_abandoned(self, record: dict[str, Any]) -> bool:
        """Mark a claim whose attempt died mid-send as unknown; False when its heartbeat moved
        since `record` was read (the claim is alive after all)."""
        result = await self._collection.update_one(
            {
                "_id": record["_id"],
                "status": logic.SENDING,
                "heartbeat_at": record.get("heartbeat_at"),
            },
            {
                "$set": {
                    "status": logic.UNKNOWN,
                    "error": "interrupted while sending",
                    "updated_at": utcnow(),
                }
            },
        )
        return result.modified_count > 0

    async def record_sent(self, notification_id: str, sent: SentSms) -> None:
        # The SMS is out: try hard to record it, or a redelivery would call it unknown.
        fields = {
            "status": logic.SENT,
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

    async def apply_receipt(self, notification_id: str, status: str, error: str) -> bool:
        """Move the record forward to a receipt's `status` (never back: "sent" after
        "delivered" changes nothing). True when the record holds `status` afterwards, also
        when an earlier copy of this receipt put it there, so a redelivered receipt still
        finishes its work on the report."""
        now = utcnow()
        fields: dict[str, Any] = {"status": status, "updated_at": now}
        if status in logic.NOT_DELIVERED:
            # It was sent: a failed receipt is no licence to send again.
            fields |= {"error": error, "refused": False}
        if status == logic.DELIVERED:
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
        statuses: frozenset[str] = frozenset({logic.SENDING}),
    ) -> None:
        """Change a record this attempt still owns (by default: while sending); stamps
        `updated_at`."""
        await self._collection.update_one(
            {"_id": notification_id, "status": {"$in": list(statuses)}},
            {"$set": {**fields, "updated_at": utcnow()}},
        )


class AccessLinks:
    """The patient's link to a report: the token goes into the SMS, the report stores only
    its hash (its `access` field)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._reports = db.reports
        self._settings = settings

    async def issue(self, report_id: str) -> logic.AccessLink:
        """A new link whose hash is stored before the SMS leaves, so it works the moment it
        arrives; issuing again (a retry after a refusal) replaces the unsent one."""
        now = utcnow()
        link = logic.access_link(
            self._settings.public_base_url, now, self._settings.access_link_ttl_hours
        )
        await self._reports.update_one(
            {"_id": report_id}, {"$set": {"access": link.access, "updated_at": now}}
        )
        return link


# --- SMS providers -----------------------------------------------------------------------------


class SmsProvider(Protocol):
    name: str

    async def send(self, to: str, body: str, status_callback: str) -> SentSms: ...


class OutboxProvider:
    """Development provider: the `outbox` collection plays the patient's phone."""

    name = "outbox"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def send(self, to: str, body: str, status_callback: str) -> SentSms:
        message_id = uuid.uuid4().hex
        try:
            await self._db.outbox.insert_one(
                {
                    "_id": message_id,
                    "to": to,
                    "body": body,
                    "sent_at": utcnow(),
                    "provider_message_id": message_id,
                }
            )
        except ConnectionFailure as error:
            # The insert may have been applied before the connection broke.
            raise OutcomeUnknown(f"outbox write interrupted: {type(error).__name__}") from error
        except PyMongoError as error:
            raise ProviderRefused(f"outbox write refused: {type(error).__name__}") from error
        return SentSms(self.name, message_id, "sent")


class TwilioProvider:
    """Twilio Programmable Messaging: one form POST per SMS to the Messages resource."""

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str,
        base_url: str = "https://api.twilio.com",
        timeout_seconds: float = 30.0,
    ) -> None:
        if not (account_sid and auth_token and sender):
            raise ValueError(
                "Twilio needs RESULTFLOW_TWILIO_ACCOUNT_SID, RESULTFLOW_TWILIO_AUTH_TOKEN "
                "and RESULTFLOW_TWILIO_FROM"
            )
        self._account_sid = account_sid
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {credentials}", "Accept": "application/json"}
        self._sender = sender
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=10)

    async def send(self, to: str, body: str, status_callback: str) -> SentSms:
        # A Messaging Service (MG...) picks the sender itself; otherwise a number or sender id.
        sender_field = "MessagingServiceSid" if self._sender.startswith("MG") else "From"
        form = {
            "To": to,
            sender_field: self._sender,
            "Body": body,
            "StatusCallback": status_callback,
        }
        # One session per SMS: nothing is shared across a shutdown that closes it under an
        # in-flight send (which would turn a clean refusal into an unknown outcome).
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(self._url, data=form, headers=self._headers) as response,
            ):
                status = response.status
                try:
                    reply: Any = await response.json(content_type=None)
                except (ValueError, aiohttp.ClientPayloadError):
                    reply = None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            # No connection was ever made: Twilio cannot have seen the request.
            raise ProviderRefused(
                f"could not connect to Twilio: {type(error).__name__}", code="connection"
            ) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise OutcomeUnknown(f"Twilio request interrupted: {type(error).__name__}") from error

        reply = reply if isinstance(reply, dict) else {}
        if status in (500, 502, 504):
            # Twilio (or a proxy before it) failed mid-request: it may have made the message.
            raise OutcomeUnknown(f"Twilio answered {status}; the message may have been created")
        if not 200 <= status < 300:
            code = str(reply.get("code") or "")
            message = logic.redact_phone_numbers(str(reply.get("message") or f"HTTP {status}"))
            raise ProviderRefused(
                f"Twilio error {code}: {message}" if code else f"Twilio refused: {message}",
                http_status=status,
                code=code,
            )
        sid = reply.get("sid")
        if not isinstance(sid, str) or not sid:
            raise OutcomeUnknown(f"Twilio answered {status} without a message sid")
        return SentSms(self.name, sid, str(reply.get("status") or "queued"))
