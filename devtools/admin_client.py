"""The admin dashboard driven over HTTP, as a browser would; and waiting for a batch to finish.
Used by `resultflow run`, the end-to-end tests and bench/."""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp

from contracts.v1 import ReportStatus
from services.infra import documents
from services.infra.database import Database
from services.infra.documents import BatchDocument, BatchStatus

CSRF = re.compile(r'name="csrf_token"\s+value="([^"]+)"')
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

    async def login(self, username: str, password: str) -> None:
        form = {
            "username": username,
            "password": password,
            "csrf_token": await self._csrf("/login"),
        }
        async with self.http.post(self.base_url + "/login", data=form) as response:
            if response.status != 200 or str(response.url).endswith("/login"):
                raise RuntimeError(f"login failed ({response.status})")

    async def upload(self, filename: str, data: bytes) -> str:
        """Upload a sheet; returns the new batch's id."""
        form = aiohttp.FormData()
        form.add_field("csrf_token", await self._csrf("/upload"))
        form.add_field(
            "file",
            data,
            filename=filename,
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        async with self.http.post(self.base_url + "/upload", data=form) as response:
            if response.status != 200 or "/batches/" not in str(response.url):
                raise RuntimeError(f"upload failed ({response.status}): {await response.text()}")
            return str(response.url).rstrip("/").split("/batches/")[1].split("/")[0]

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
