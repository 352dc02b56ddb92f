"""A local HTTP server speaking the part of Africa's Talking's SMS API that ResultFlow uses.

    async with FakeAfricasTalking() as at:
        settings.africastalking_base_url = at.base_url
        ...
        [message] = at.messages
        await at.send_report(url, message["messageId"], "Success")

POST /version1/messaging takes a form (username, to, message, optional from) with the
`apiKey` header, checks both the way Africa's Talking does (401 and its plain-text complaint
otherwise) and answers 201 with its JSON (`SMSMessageData.Recipients[]`, statusCode 101,
an "ATXid_..." messageId, cost). Faults, queued for the next requests:
`refuse_next(405)` (a recipient status code: nothing sent), `fail_next(429, retry_after="2")`
(an HTTP error), `drop_next()` (accept, then cut the connection without answering),
`delay_seconds` (the message is taken at once, the answer comes that late), and
`go_down()` / `come_back()` (the port closes and opens again). Delivery reports are
posted on demand, as form fields, like its callbacks.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from services.infra.africastalking import FAILED, REFUSED
from tests.support import free_port

STATUS_WORDS = {100: "Processed", 101: "Success", 102: "Queued", **REFUSED, **FAILED}


@dataclass
class ReceivedRequest:
    api_key: str | None
    accept: str | None
    form: dict[str, str]
    status: int = 0  # the HTTP status the fake answered
    at: float = 0.0  # loop time of arrival


@dataclass
class FakeAfricasTalking:
    username: str = "sandbox"
    api_key: str = field(default_factory=lambda: "atsk_" + secrets.token_hex(24))
    requests: list[ReceivedRequest] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # accepted messages
    reports: list[tuple[dict[str, str], int]] = field(default_factory=list)
    delay_seconds: float = 0.0
    _refusals: list[int] = field(default_factory=list)
    _failures: list[tuple[int, str, str | None]] = field(default_factory=list)
    _drops: int = 0
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def refuse_next(self, status_code: int) -> None:
        """Answer the next SMS with this recipient statusCode (e.g. 403, 405, 500)."""
        self._refusals.append(status_code)

    def fail_next(self, http_status: int, text: str = "", retry_after: str | None = None) -> None:
        """Answer the next request with this HTTP error (and Retry-After), sending nothing."""
        self._failures.append((http_status, text, retry_after))

    def drop_next(self) -> None:
        """Accept the next SMS, then close the connection without answering."""
        self._drops += 1

    async def __aenter__(self) -> FakeAfricasTalking:
        self.port = free_port()
        await self.come_back()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.go_down()

    async def go_down(self) -> None:
        """Close the port: connections are refused until `come_back`."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def come_back(self) -> None:
        app = web.Application()
        app.router.add_post("/version1/messaging", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _send(self, request: web.Request) -> web.StreamResponse:
        form = {key: str(value) for key, value in (await request.post()).items()}
        received = ReceivedRequest(
            request.headers.get("apiKey"),
            request.headers.get("Accept"),
            form,
            at=asyncio.get_running_loop().time(),
        )
        self.requests.append(received)
        if received.api_key != self.api_key or form.get("username") != self.username:
            received.status = 401
            return web.Response(status=401, text="The supplied authentication is invalid")
        for name in ("to", "message"):
            if not form.get(name):
                received.status = 400
                return web.Response(status=400, text=f"Request is missing required field {name}")
        if self._failures:
            http_status, text, retry_after = self._failures.pop(0)
            received.status = http_status
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return web.Response(status=http_status, text=text or "Error", headers=headers)
        code = self._refusals.pop(0) if self._refusals else 101
        if not form["to"].startswith("+"):
            code = 403
        if code not in (100, 101, 102):
            received.status = 201
            return _answer([_recipient(code, form["to"], "None", "0")], sent=0)
        message_id = "ATXid_" + secrets.token_hex(16)
        self.messages.append(
            {
                "messageId": message_id,
                "to": form["to"],
                "message": form["message"],
                "from": form.get("from"),
            }
        )
        received.status = 201
        if self.delay_seconds:  # accepted (it will go out), but the answer comes late
            await asyncio.sleep(self.delay_seconds)
        if self._drops:
            self._drops -= 1
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("fake Africa's Talking dropped the connection")
        return _answer([_recipient(code, form["to"], message_id, "KES 0.8000")], sent=1)

    async def send_report(
        self, url: str, message_id: str, status: str, failure_reason: str = ""
    ) -> int:
        """Post a delivery report for `message_id` to `url`, as Africa's Talking does."""
        message = next((m for m in self.messages if m["messageId"] == message_id), None)
        form = {
            "id": message_id,
            "status": status,
            "phoneNumber": message["to"] if message else "+254711000000",
            "networkCode": "63902",
            "retryCount": "0",
        }
        if failure_reason:
            form["failureReason"] = failure_reason
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=form) as response,
        ):
            self.reports.append((form, response.status))
            return response.status


def _recipient(code: int, number: str, message_id: str, cost: str) -> dict[str, Any]:
    return {
        "statusCode": code,
        "number": number,
        "status": STATUS_WORDS.get(code, "Unknown"),
        "cost": cost,
        "messageId": message_id,
    }


def _answer(recipients: list[dict[str, Any]], *, sent: int) -> web.Response:
    return web.json_response(
        {
            "SMSMessageData": {
                "Message": f"Sent to {sent}/{len(recipients)} Total Cost: KES {0.8 * sent:.4f}",
                "Recipients": recipients,
            }
        },
        status=201,
    )
