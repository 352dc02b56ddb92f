"""SMS providers: the development outbox and Twilio's REST API.

Every provider tells three outcomes apart, because "never send twice" depends on it:
a `SentSms` (the provider has the message), `ProviderRefused` (it definitely does not:
the connection never opened, or it answered with an error), and `OutcomeUnknown` (the
request may have reached it; sending again could mean a second SMS).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
from pymongo.errors import ConnectionFailure, PyMongoError

from contracts.v1 import utcnow
from services.infra import documents
from services.infra.database import Database
from services.infra.opt_outs import PROVIDER_OPT_OUT_CODE
from services.notify import logic


@dataclass(frozen=True)
class SentSms:
    provider: str
    provider_message_id: str
    status: str
    failed_over_from: tuple[str, ...] = ()  # providers that refused it first


class ProviderRefused(Exception):
    """The provider definitely did not take the message; sending again is safe."""

    def __init__(
        self,
        reason: str,
        *,
        http_status: int | None = None,
        code: str = "",
        retry_after: float | None = None,
        final: bool | None = None,
        opted_out: bool | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status
        self.code = code
        self.retry_after = retry_after  # seconds a 429 asked us to wait
        self._final = final
        # The provider says the patient opted out: like a STOP reply, sent by no one else.
        self.opted_out = code == PROVIDER_OPT_OUT_CODE if opted_out is None else opted_out

    @property
    def permanent(self) -> bool:
        """A 4xx answer (bad credentials, bad number) will not change by retrying."""
        if self._final is not None:
            return self._final
        status = self.http_status
        return status is not None and 400 <= status < 500 and status not in (408, 409, 429)


class OutcomeUnknown(Exception):
    """The request may have reached the provider: the SMS may or may not have been sent."""


class SmsProvider(Protocol):
    name: str

    async def send(self, to: str, body: str, status_callback: str) -> SentSms: ...


class OutboxProvider:
    """Development provider: the `outbox` collection plays the patient's phone."""

    name = "outbox"

    def __init__(self, db: Database) -> None:
        self._outbox = documents.outbox(db)

    async def send(self, to: str, body: str, status_callback: str) -> SentSms:
        message_id = uuid.uuid4().hex
        try:
            await self._outbox.insert_one(
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
                retry_after = response.headers.get("Retry-After")
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
                retry_after=retry_after_seconds(retry_after),
            )
        sid = reply.get("sid")
        if not isinstance(sid, str) or not sid:
            raise OutcomeUnknown(f"Twilio answered {status} without a message sid")
        return SentSms(self.name, sid, str(reply.get("status") or "queued"))


def retry_after_seconds(header: str | None) -> float | None:
    """A Retry-After header's wait in seconds (delta-seconds or an HTTP date); None if absent."""
    if not header:
        return None
    try:
        return max(0.0, float(header.strip()))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - utcnow()).total_seconds())
