"""A local HTTP server speaking the part of Twilio's REST API that ResultFlow uses.

    async with FakeTwilio() as twilio:
        settings.twilio_base_url = twilio.base_url
        ...
        [message] = twilio.messages
        await twilio.send_status(message["sid"], "delivered")

It checks HTTP basic auth and the required form fields the way Twilio does, answers with
Twilio-shaped JSON (201 with an "SM..." sid, or an error with Twilio's code), records every
request, and posts signed status callbacks (X-Twilio-Signature) on demand. Failures can be
queued: `twilio.fail_next(500, 20500, "Internal Server Error")`, or `twilio.drop_next()`
to accept a message and cut the connection without answering (outcome unknown to the
client); `twilio.delay_seconds` makes every accepted message take that long.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass, field
from email.utils import format_datetime
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from contracts.v1 import utcnow
from services.infra.twilio import signature as twilio_signature
from tests.support import free_port

API_VERSION = "2010-04-01"


@dataclass
class ReceivedRequest:
    path: str
    account_sid: str
    username: str | None
    password: str | None
    form: dict[str, str]
    status: int = 0  # what the fake answered


@dataclass
class FakeTwilio:
    account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    requests: list[ReceivedRequest] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # accepted (201) messages
    callbacks: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    _failures: list[tuple[int, int, str]] = field(default_factory=list)
    _drops: int = 0
    delay_seconds: float = 0.0  # how long accepting a message takes
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, http_status: int, code: int, message: str) -> None:
        """Answer the next message request with this Twilio error (nothing is sent)."""
        self._failures.append((http_status, code, message))

    def drop_next(self) -> None:
        """Accept the next message, then close the connection without answering."""
        self._drops += 1

    async def __aenter__(self) -> FakeTwilio:
        app = web.Application()
        app.router.add_post(
            "/2010-04-01/Accounts/{account_sid}/Messages.json", self._create_message
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _create_message(self, request: web.Request) -> web.StreamResponse:
        account_sid = request.match_info["account_sid"]
        username, password = _basic_auth(request)
        form = {key: str(value) for key, value in (await request.post()).items()}
        received = ReceivedRequest(request.path, account_sid, username, password, form)
        self.requests.append(received)

        if (username, password) != (self.account_sid, self.auth_token) or (
            account_sid != self.account_sid
        ):
            received.status = 401
            return _error(401, 20003, "Authenticate")
        for name, code, text in (
            ("To", 21604, "A 'To' phone number is required."),
            ("From", 21603, "A 'From' phone number is required."),
            ("Body", 21602, "Message body is required."),
        ):
            if not form.get(name) and not (name == "From" and form.get("MessagingServiceSid")):
                received.status = 400
                return _error(400, code, text)
        if not form["To"].startswith("+"):
            received.status = 400
            return _error(400, 21211, f"The 'To' number {form['To']} is not a valid phone number.")
        if self._failures:
            http_status, code, text = self._failures.pop(0)
            received.status = http_status
            return _error(http_status, code, text)

        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        now = format_datetime(utcnow(), usegmt=True)
        sid = "SM" + secrets.token_hex(16)
        message = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": form["Body"],
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
            },
            "to": form["To"],
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json",
            "status_callback": form.get("StatusCallback"),
        }
        self.messages.append(message)
        if self._drops:
            self._drops -= 1
            received.status = 201
            # The message is accepted, but the client never hears so.
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("fake Twilio dropped the connection")
        received.status = 201
        return web.json_response(message, status=201)

    async def send_status(self, sid: str, status: str, error_code: str = "") -> int:
        """Post a signed status callback for message `sid`; returns the HTTP status."""
        message = next(m for m in self.messages if m["sid"] == sid)
        url = message["status_callback"]
        if not url:
            raise ValueError(f"message {sid} has no StatusCallback")
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": message["from"] or "",
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": message["to"],
        }
        if error_code:
            form["ErrorCode"] = error_code
        headers = {"X-Twilio-Signature": twilio_signature(self.auth_token, url, form)}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=form, headers=headers) as response,
        ):
            self.callbacks.append((url, form, response.status))
            return response.status

    async def send_inbound(
        self, url: str, sender: str, body: str, to: str = "+447700900999"
    ) -> int:
        """Post a signed inbound-message webhook, as Twilio does when a phone texts our number
        (e.g. a patient replying STOP); returns the HTTP status."""
        sid = "SM" + secrets.token_hex(16)
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": sender,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": to,
        }
        headers = {"X-Twilio-Signature": twilio_signature(self.auth_token, url, form)}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=form, headers=headers) as response,
        ):
            self.callbacks.append((url, form, response.status))
            return response.status


def _basic_auth(request: web.Request) -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:]).decode()
    except ValueError:
        return None, None
    username, _, password = decoded.partition(":")
    return username, password


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )
