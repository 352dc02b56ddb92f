"""The admin dashboard driven over HTTP, as a browser would; and waiting for a batch to finish.
Used by `resultflow run`, the end-to-end tests and bench/."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from html import unescape

import aiohttp
import pyotp

from contracts.v1 import ReportStatus
from services.infra import documents
from services.infra.database import Database
from services.infra.documents import BatchDocument, BatchStatus

CSRF = re.compile(r'name="csrf_token"\s+value="([^"]+)"')
MFA_SECRET = re.compile(r'id="mfa-secret"[^>]*>([A-Z2-7]+)<')


class Authenticator:
    """A phone's authenticator app, for scripts and tests: it keeps the TOTP secrets of the
    accounts it set up and gives each code once, as the gateway accepts a code once."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self._last_step: dict[str, int] = {}

    async def code(self, username: str) -> str:
        totp = pyotp.TOTP(self.secrets[username])
        while True:
            now = totp.timecode(time.time())
            # The gateway takes the next step's code too (clock drift): no wait for a new one.
            step = max(now, self._last_step.get(username, -1) + 1)
            if step <= now + 1:
                self._last_step[username] = step
                return totp.generate_otp(step)
            await asyncio.sleep(1)


# One per process, like one phone: every script or test signing in shares it.
AUTHENTICATOR = Authenticator()
# Sends (method, path, form or None) and gives (final path, page) after redirects.
Fetch = Callable[[str, str, dict[str, str] | None], Awaitable[tuple[str, str]]]


async def sign_in(fetch: Fetch, username: str, password: str, next_path: str = "/") -> str:
    """Sign in as a browser would, through every step the gateway asks for: the password,
    then a TOTP code (set up on the way when the role needs one, as `AUTHENTICATOR`).
    Returns the page signed in to; raises when a step fails."""
    path, page = await fetch("GET", f"/login?next={next_path}", None)
    form = {"username": username, "password": password, "csrf_token": _csrf(page)}
    path, page = await fetch("POST", "/login", form)
    path, page = await finish_sign_in(fetch, username, path, page)
    if path.startswith("/login"):
        raise RuntimeError(f"login of {username} stopped at {path}")
    return page


async def finish_sign_in(fetch: Fetch, username: str, path: str, page: str) -> tuple[str, str]:
    """After the password: the MFA steps the gateway asks for, if any."""
    for _ in range(4):
        if path == "/login/mfa/setup":
            match = MFA_SECRET.search(page)
            if match is None:
                raise RuntimeError("no MFA secret on the setup page")
            AUTHENTICATOR.secrets[username] = unescape(match.group(1))
            AUTHENTICATOR._last_step.pop(username, None)
            code = await AUTHENTICATOR.code(username)
            path, page = await fetch("POST", path, {"code": code, "csrf_token": _csrf(page)})
            if "recovery-codes" not in page:
                raise RuntimeError(f"MFA setup refused: {path}")
            path, page = await fetch("POST", "/login/recovery-codes", {"csrf_token": _csrf(page)})
        elif path == "/login/mfa":
            code = await AUTHENTICATOR.code(username)
            path, page = await fetch("POST", path, {"code": code, "csrf_token": _csrf(page)})
        else:
            break
    return path, page


def _csrf(page: str) -> str:
    match = CSRF.search(page)
    if match is None:
        raise RuntimeError("no CSRF token on the page")
    return match.group(1)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Where a report's journey ends as far as a batch is concerned.
END_STATES = (ReportStatus.NOTIFIED, ReportStatus.DELIVERED, ReportStatus.FAILED)


class AdminClient:
    """The admin dashboard driven over HTTP, as a browser would (session cookie + CSRF)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def _csrf(self, path: str) -> str:
        async with self.http.get(self.base_url + path) as response:
            page = await response.text()
        match = CSRF.search(page)
        if match is None:
            raise RuntimeError(f"no CSRF token on {path}")
        return match.group(1)

    async def _fetch(self, method: str, path: str, form: dict[str, str] | None) -> tuple[str, str]:
        async with self.http.request(method, self.base_url + path, data=form) as response:
            return response.url.path, await response.text()

    async def login(self, username: str, password: str) -> None:
        await sign_in(self._fetch, username, password)

    async def upload(self, filename: str, data: bytes, preview: bool = False) -> str:
        """Upload a sheet (straight to ingest unless `preview`); returns the new batch's id."""
        form = aiohttp.FormData()
        form.add_field("csrf_token", await self._csrf("/upload"))
        form.add_field(
            "file",
            data,
            filename=filename,
            content_type=XLSX,
        )
        form.add_field("preview", "true" if preview else "false")
        async with self.http.post(self.base_url + "/upload", data=form) as response:
            if response.status != 200 or "/batches/" not in str(response.url):
                raise RuntimeError(f"upload failed ({response.status}): {await response.text()}")
            return str(response.url).rstrip("/").split("/batches/")[1].split("/")[0]

    async def upload_as_system(self, token: str, filename: str, data: bytes) -> str:
        """Upload a sheet through the admin API with a bearer token (as an LIS would);
        returns the new batch's id."""
        form = aiohttp.FormData()
        form.add_field("file", data, filename=filename, content_type=XLSX)
        headers = {"Authorization": f"Bearer {token}"}
        url = self.base_url + "/api/v1/batches"
        async with self.http.post(url, data=form, headers=headers) as response:
            if response.status != 202:
                raise RuntimeError(f"upload failed ({response.status}): {await response.text()}")
            return str((await response.json())["batch_id"])

    async def close(self) -> None:
        await self.http.close()


async def wait_for_batch(db: Database, batch_id: str, timeout: float) -> BatchDocument:
    """Until the batch is ingested and each of its reports has reached an end state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = await documents.batches(db).find_one({"_id": batch_id})
        if batch and batch["status"] == BatchStatus.FAILED:
            return batch
        if batch and batch["status"] == BatchStatus.INGESTED:
            done = await db.reports.count_documents(
                {"batch_id": batch_id, "status": {"$in": [s.value for s in END_STATES]}}
            )
            if done >= batch["reports_created"]:
                return batch
        await asyncio.sleep(0.5)
    raise TimeoutError(f"batch {batch_id} not finished after {timeout}s")
