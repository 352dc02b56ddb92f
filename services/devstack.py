"""`resultflow run`: the whole system on this machine with its embedded defaults.

Starts the MongoDB-protocol server (unless MONGODB_URI is set), every service as its own
process, makes the first admin, uploads a demo batch through the gateway like a person
would, and prints where to look. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp

from services.demo import demo_sheet
from services.infra.database import Database, connect, ensure_indexes
from services.infra.settings import Settings
from services.launcher import Stack, mongodb_server

EXAMPLE_SHEET = Path(__file__).resolve().parent.parent / "examples" / "results-20-patients.xlsx"
END_STATES = ("notified", "delivered", "failed")
CSRF = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


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


async def wait_for_batch(db: Database, batch_id: str, timeout: float) -> dict[str, Any]:
    """Until the batch is ingested and each of its reports has reached an end state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = await db.batches.find_one({"_id": batch_id})
        if batch and batch["status"] == "failed":
            return batch
        if batch and batch["status"] == "ingested":
            done = await db.reports.count_documents(
                {"batch_id": batch_id, "status": {"$in": list(END_STATES)}}
            )
            if done >= batch["reports_created"]:
                return batch
        await asyncio.sleep(0.5)
    raise TimeoutError(f"batch {batch_id} not finished after {timeout}s")


def admin_password(var: Path) -> tuple[str, bool]:
    """The demo admin's password, made once and kept in var/ (mode 600)."""
    path = var / "admin-password"
    if path.exists():
        return path.read_text().strip(), False
    password = secrets.token_urlsafe(12)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password, True


async def _prepare_and_demo(settings: Settings, var: Path, stack: Stack, demo: bool) -> None:
    await stack.wait_ready()
    password, new = admin_password(var)
    client, db = connect(settings)
    try:
        await ensure_indexes(db)
        if new or not await db.users.find_one({"username": "admin"}):
            from services.gateway.adapters import create_user

            await db.users.delete_many({"username": "admin"})
            await create_user(db, "admin", password)
        print(f"\nDashboard:   {settings.public_base_url}/   (admin / {password})")
        print(f"Example sheet to upload: {EXAMPLE_SHEET}")
        if not demo:
            return
        admin = AdminClient(settings.public_base_url)
        try:
            await admin.login("admin", password)
            sheet = demo_sheet(20, sample_date=None)
            batch_id = await admin.upload("demo-results.xlsx", sheet)
            print(f"Demo batch:  {settings.public_base_url}/batches/{batch_id}")
        finally:
            await admin.close()
        await wait_for_batch(db, batch_id, timeout=300)
        sms = await db.outbox.find_one(sort=[("sent_at", -1)])
        if sms is not None:
            link = re.search(r"https?://\S+", sms["body"])
            report = await db.reports.find_one({"patient.phone": sms["to"]})
            if link and report:
                print(f"Patient link: {link.group(0)}")
                print(f"  date of birth to enter: {report['patient']['date_of_birth']}")
        print(f"SMS outbox:  {settings.public_base_url}/outbox\nLogs:        {stack.log_dir}")
        print("Press Ctrl-C to stop.\n")
    finally:
        await client.close()


def _stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_everything(var: Path, demo: bool = True) -> None:
    # Ctrl-C, a closed terminal or a plain `kill` all stop every process this started.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    var = var.resolve()
    var.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack_of_things:
        settings = Settings()
        if "MONGODB_URI" not in os.environ:
            uri = stack_of_things.enter_context(mongodb_server(var / "mongodb", port=27018))
            settings = settings.model_copy(update={"mongodb_uri": uri})
        stack = stack_of_things.enter_context(Stack(settings, var / "logs"))
        try:
            asyncio.run(_prepare_and_demo(settings, var, stack, demo))
            while True:
                stack.check_alive()
                time.sleep(2)
        except KeyboardInterrupt:
            print("stopping…")
