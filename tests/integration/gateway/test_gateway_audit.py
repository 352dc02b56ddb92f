"""The audit trail through the gateway: what staff and patients do is recorded with who, which
role, what, how it ended and from which address (behind a trusted proxy: the client's); admins
read it on its page (in a real browser: filters, CSV export) and through the API."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page

from devtools.demo import demo_sheet
from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.api import PREFIX
from services.gateway.permissions import Role
from services.infra.audit import Audit, staff
from services.infra.database import Database
from services.infra.settings import Settings
from tests.support import PASSWORD, chromium, csrf_from, log_in, report_document

PROXY = "127.0.0.1"  # the test client connects from here: it plays the lab's reverse proxy


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"trusted_proxies": PROXY})


async def audit_entries(db: Database) -> None:
    audit = Audit(db)
    await audit.write("cli:root", "user.created", None, {"role": "viewer"}, object="=2+3")
    await audit.write("patient", "portal.check_failed", "r-1", {}, outcome="failure")
    await audit.write("patient", "portal.check_passed", "r-1", {})
    await audit.write("patient", "portal.check_failed", "r-2", {}, outcome="failure")
    await audit.write(staff("ann"), "report.released", "r-1", {"reason": "ok"}, role="reviewer")


async def browser_signed_in_as(admin: TestClient[Any, Any], page: Page) -> str:
    """The browser takes over the signed-in session of the test client."""
    base_url = str(admin.make_url("")).rstrip("/")
    cookies: list[Any] = [
        {"name": cookie.key, "value": cookie.value, "url": base_url}
        for cookie in admin.session.cookie_jar
    ]
    await page.context.add_cookies(cookies)
    return base_url


def csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


async def test_an_admin_filters_the_audit_trail_and_exports_what_the_filters_show(
    admin: TestClient[Any, Any], db: Database, tmp_path: Path
) -> None:
    await audit_entries(db)
    async with chromium() as browser:
        page = await browser.new_page()
        base_url = await browser_signed_in_as(admin, page)
        await page.goto(f"{base_url}/")
        await page.click("text=Audit trail")
        await page.wait_for_url(f"{base_url}/audit")
        table = await page.locator("table.audit").inner_text()
        assert "report.released" in table and "reviewer" in table and "user.created" in table

        await page.get_by_label("Action starts with").fill("portal.")
        await page.get_by_label("Outcome").select_option("failure")
        await page.click("button:text('Filter')")
        await page.wait_for_url("**/audit?*outcome=failure*")
        rows = page.locator("table.audit tbody tr")
        assert await rows.count() == 2
        assert "portal.check_passed" not in await page.locator("table.audit").inner_text()
        assert await rows.first.locator("td").nth(5).inner_text() == "r-2"  # newest first

        async with page.expect_download() as download_info:
            await page.click("text=Export CSV")
        download = await download_info.value
        filtered = tmp_path / "filtered.csv"
        await download.save_as(filtered)

        await page.goto(f"{base_url}/audit")
        async with page.expect_download() as download_info:
            await page.click("text=Export CSV")
        everything = tmp_path / "all.csv"
        await (await download_info.value).save_as(everything)

    exported = csv_rows(filtered)
    assert [(r["action"], r["object"], r["outcome"]) for r in exported] == [
        ("portal.check_failed", "r-2", "failure"),
        ("portal.check_failed", "r-1", "failure"),
    ]
    assert all(len(r["hash"]) == 64 and r["at"].endswith("Z") for r in exported)
    # A value a spreadsheet would run as a formula is exported as text.
    [created] = [r for r in csv_rows(everything) if r["action"] == "user.created"]
    assert created["object"] == "'=2+3"
    # Taking a copy of the trail is itself in the trail, with the filters used.
    exports = await db.audit.find({"action": "audit.exported"}).sort("seq", 1).to_list()
    assert [e["detail"]["filters"] for e in exports] == [
        {"action": "portal.", "outcome": "failure"},
        {},
    ]


async def test_only_admins_see_the_audit_trail_link_and_page(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "rita", PASSWORD, Role.REVIEWER)
    await log_in(client, "rita")
    home = await (await client.get("/")).text()
    assert "Release queue" in home and 'href="/audit"' not in home
    assert (await client.get("/audit")).status == 403
    assert (await client.get("/audit.csv")).status == 403


async def test_staff_actions_are_audited_with_role_outcome_and_the_forwarded_client(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "rita", PASSWORD, Role.REVIEWER)
    _, token = await ApiTokens(db).create("rita")
    held = report_document(status="held", pdf_file_id="0" * 24)
    await db.reports.insert_one(held)
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Forwarded-For": "203.0.113.50, 198.51.100.7",  # the first was written by the client
    }
    path = f"{PREFIX}/reports/{held['_id']}/release"
    assert (await client.post(path, json={}, headers=headers)).status == 200
    assert (await client.post(path, json={}, headers=headers)).status == 409  # released already

    entries = await db.audit.find({"object": held["_id"]}).sort("seq", 1).to_list()
    seen = [(e["action"], e["actor"], e["role"], e["outcome"], e["client"]) for e in entries]
    assert seen == [
        ("report.released", "admin:rita", "reviewer", "success", "198.51.100.7"),
        ("report.release_refused", "admin:rita", "reviewer", "refused", "198.51.100.7"),
    ]
    assert "released" in entries[1]["detail"]["refused"]


async def test_uploads_through_the_page_are_audited_whether_taken_or_refused(
    admin: TestClient[Any, Any], db: Database
) -> None:
    for name, data in (("monday.xlsx", demo_sheet(2)), ("notes.txt", b"not a sheet")):
        form = aiohttp.FormData()
        form.add_field("csrf_token", await csrf_from(admin, "/upload"))
        form.add_field("file", io.BytesIO(data), filename=name)
        await (await admin.post("/upload", data=form)).read()
    batch = await db.batches.find_one({})
    assert batch is not None
    entries = await db.audit.find({"action": {"$regex": "^batch"}}).sort("seq", 1).to_list()
    seen = [(e["action"], e["role"], e["outcome"], e["object"], e["client"]) for e in entries]
    assert seen == [
        ("batch.uploaded", "admin", "success", batch["_id"], PROXY),
        ("batch.upload_refused", "admin", "refused", None, PROXY),
    ]
    assert entries[1]["detail"]["filename"] == "notes.txt"


async def test_the_api_lists_the_audit_trail_newest_first_with_the_same_filters(
    admin: TestClient[Any, Any], db: Database
) -> None:
    await audit_entries(db)
    response = await admin.get(f"{PREFIX}/audit", params={"actor": "patient", "object": "r-1"})
    assert response.status == 200
    body = await response.json()
    assert [(i["action"], i["outcome"]) for i in body["items"]] == [
        ("portal.check_passed", "success"),
        ("portal.check_failed", "failure"),
    ]
    assert body["items"][0]["seq"] == body["items"][1]["seq"] + 1
    assert body["next_page"] is None and body["items"][0]["role"] == "patient"
    document = await (await admin.get(f"{PREFIX}/openapi.json")).json()
    assert "AuditList" in document["components"]["schemas"]
    assert "get" in document["paths"][f"{PREFIX}/audit"]
