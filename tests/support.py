"""Start the real servers tests talk to: a MongoDB-protocol server and a RabbitMQ vhost.

`secantusd-py` (the pinned `secantusdb`) runs as a separate process on a free port with its
own storage; RabbitMQ gets a fresh virtual host per test session, so concurrent runs and
earlier runs never see each other's queues. Set TEST_MONGODB_URI / TEST_AMQP_URL to use
servers you run yourself (e.g. MongoDB 7).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, async_playwright

from contracts.v1 import IngestLisResult, LabResult, Patient, ReportStatus, utcnow
from devtools.admin_client import AUTHENTICATOR, finish_sign_in
from devtools.launcher import free_port, mongodb_server, rabbitmq_vhost
from services.infra.documents import LisSource, SheetSource
from services.ingest import logic as ingest

__all__ = [
    "chromium",
    "csrf_from",
    "drain",
    "eventually",
    "free_port",
    "lis_message",
    "log_in",
    "mongodb_server",
    "office_processes",
    "rabbitmq_vhost",
    "report_document",
]

PATIENT: dict[str, Any] = {
    "patient_id": "P-1",
    "name": "Amelia Thornbury",
    "date_of_birth": "1980-02-03",
    "sex": "F",
    "phone": "+447700900123",
}
RESULTS: list[dict[str, Any]] = [
    {
        "test": "Glucose",
        "value": "5.4",
        "unit": "mmol/L",
        "reference_range": "3.9-5.6",
        "flag": "",
    }
]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def eventually(
    probe: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1
) -> Any:
    """Await `probe()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def drain(amqp_url: str, queue: str) -> list[dict[str, Any]]:
    """Take every message waiting in `queue` (acking them) and return their JSON bodies."""
    import json

    import aio_pika

    bodies: list[dict[str, Any]] = []
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.get_queue(queue, ensure=True)
        while (message := await declared.get(fail=False)) is not None:
            await message.ack()
            bodies.append(json.loads(message.body))
    return bodies


def report_document(
    *,
    status: str = "received",
    report_id: str | None = None,
    batch_id: str | None = None,
    patient: dict[str, Any] | None = None,
    results: list[dict[str, Any]] | None = None,
    sample_date: str = "2026-03-02",
    comments: str = "",
    **fields: Any,
) -> dict[str, Any]:
    """A `reports` document built by ingest's own `report_document`, then moved to `status`.

    An LIS report unless `batch_id` is given (then a sheet report of that batch). `patient`
    entries replace those of `PATIENT`; `results` replaces `RESULTS`. The history holds one
    entry, `status`. Any other keyword (e.g. `lab_id`, `template`, `docx_file_id`, `history`)
    is set on the document as given.
    """
    report_id = report_id or uuid.uuid4().hex
    person = Patient.model_validate({**PATIENT, **(patient or {})})
    sampled = date.fromisoformat(sample_date)
    source: SheetSource | LisSource
    if batch_id is None:
        source = {"kind": "lis", "message_id": report_id, "accession": report_id}
        source_key = f"lis:{report_id}"
    else:
        source = {"kind": "sheet", "batch_id": batch_id, "rows": [2]}
        source_key = ingest.sheet_source_key(person.patient_id, sampled)
    draft = ingest.ReportDraft(
        source_key=source_key,
        patient=person,
        sample_date=sampled,
        results=[LabResult.model_validate(r) for r in (RESULTS if results is None else results)],
        rows=source["rows"] if source["kind"] == "sheet" else [],
        comments=comments,
    )
    now = utcnow()
    document: dict[str, Any] = dict(
        ingest.report_document(
            draft,
            report_id=report_id,
            lab_id="demo-lab",
            correlation_id=batch_id or f"corr-{report_id}",
            source=source,
            now=now,
        )
    )
    document["status"] = ReportStatus(status).value
    document["history"] = [{"status": document["status"], "at": now, "reason": ""}]
    document.update(fields)
    return document


PASSWORD = "correct horse battery staple"


async def log_in(
    client: TestClient[Any, Any], username: str = "admin", password: str = PASSWORD
) -> Any:
    """Sign in to the gateway's dashboard as a browser would (login CSRF included), through
    the MFA steps the role asks for (`devtools.admin_client.AUTHENTICATOR` plays the phone).
    Returns the last response."""
    token = await csrf_from(client, "/login")
    last = await client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )

    async def fetch(method: str, path: str, form: dict[str, str] | None) -> tuple[str, str]:
        nonlocal last
        last = await client.request(method, path, data=form)
        return last.url.path, await last.text()

    await finish_sign_in(fetch, username, last.url.path, await last.text())
    return last


async def browser_log_in(
    page: Page, base_url: str, username: str = "admin", password: str = PASSWORD
) -> None:
    """Sign in with a real browser, typing the TOTP code of `AUTHENTICATOR` when asked."""
    await page.goto(f"{base_url}/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    for _ in range(4):
        path = urlsplit(page.url).path
        if path == "/login/mfa/setup" and await page.locator("#mfa-secret").count():
            secret = (await page.text_content("#mfa-secret")) or ""
            AUTHENTICATOR.secrets[username] = secret.strip()
            await page.fill("#code", await AUTHENTICATOR.code(username))
            await page.click("button[type=submit]")
            await page.click("text=I have kept them")
        elif path == "/login/mfa":
            await page.fill("#code", await AUTHENTICATOR.code(username))
            await page.click("button[type=submit]")
        else:
            break
    assert not urlsplit(page.url).path.startswith("/login"), f"stuck at {page.url}"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's headless Chromium driven by Playwright (its own browser download is blocked)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            await browser.close()


DOC_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """Where a browser test saves the screenshot `name` (a .png): the documentation's
    `docs/screenshots/` when RESULTFLOW_DOC_SCREENSHOTS=1 (to refresh the manuals' pictures),
    else the test's own folder, so an ordinary run leaves the checkout as it was."""
    folder = DOC_SCREENSHOTS if os.environ.get("RESULTFLOW_DOC_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


async def csrf_from(client: TestClient[Any, Any], path: str) -> str:
    """The CSRF token of the form on the gateway page at `path`."""
    response = await client.get(path)
    match = CSRF.search(await response.text())
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def office_processes(work_dir: Path) -> list[tuple[int, int]]:
    """(pid, process group) of every live LibreOffice process with its profile in work_dir."""
    marker = f"-env:UserInstallation={work_dir.as_uri()}/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if any(arg.startswith(marker) for arg in argv) and fields[0] != "Z":
            found.append((int(entry.name), int(fields[2])))
    return found


def lis_message(**overrides: Any) -> IngestLisResult:
    body: dict[str, Any] = {
        "correlation_id": uuid.uuid4().hex,
        "message_id": "LIS-1",
        "lab_id": "demo-lab",  # the default settings' lab: ingest refuses unknown labs
        "accession": "ACC-1",
        "patient": {
            "patient_id": "P7",
            "name": "Ivo Haddad",
            "date_of_birth": "1966-05-04",
            "sex": "M",
            "phone": "07400 123456",
        },
        "sample_date": "2026-11-23",
        "results": [{"test": "HbA1c", "value": "48", "unit": "mmol/mol", "flag": "H"}],
    }
    body.update(overrides)
    return IngestLisResult.model_validate(body)
