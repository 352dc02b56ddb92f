"""Sheet profiles and the previewed upload in a real browser: an admin writes a profile in
the dashboard, uploads a sheet with it, sees the preview (nothing made yet) and confirms;
every page is axe-core clean."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page

from services.gateway.accounts_store import create_user
from services.infra.database import Database
from services.infra.service import Resources
from services.ingest.main import create_app as create_ingest
from tests.axe import serious_violations
from tests.integration.ingest.test_sheet_profiles import sysmex_sheet
from tests.support import PASSWORD, browser_log_in, chromium, eventually


@pytest.fixture
def base_url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("")).rstrip("/")


@pytest.fixture
async def ingest(make_resources: Callable[[str], Resources]) -> AsyncIterator[None]:
    async with create_ingest(make_resources("ingest")):
        yield


async def assert_accessible(page: Page, what: str) -> None:
    violations = await serious_violations(page)
    assert violations == [], f"{what}: {violations}"


@pytest.mark.usefixtures("ingest")
async def test_an_admin_writes_a_profile_uploads_with_it_previews_and_confirms(
    base_url: str, db: Database, tmp_path: Path
) -> None:
    await create_user(db, "admin", PASSWORD)
    sheet = tmp_path / "sysmex.xlsx"
    sheet.write_bytes(sysmex_sheet())
    async with chromium() as browser:
        page = await browser.new_page(bypass_csp=True)
        await browser_log_in(page, base_url, "admin", PASSWORD)

        await page.goto(f"{base_url}/sheet-profiles")
        assert "No profiles yet" in await page.inner_text("main")
        await assert_accessible(page, "profile list")
        await page.get_by_role("link", name="New profile").click()
        await page.get_by_label("Profile name").fill("Sysmex")
        await page.get_by_label("Patient ID").fill("Lab No")
        await page.get_by_label("Value", exact=True).fill("Res")
        await page.get_by_label("Flag", exact=True).fill("Interp")
        await page.get_by_label("Date order").select_option("true")
        await page.get_by_label("Phone country").fill("FR")
        await page.get_by_label("Flag words").fill("pos = X")
        await assert_accessible(page, "profile form")
        await page.get_by_role("button", name="Save profile").click()
        assert "line 1" in await page.inner_text("[role=alert]")  # X is no flag code
        await assert_accessible(page, "profile form with an error")
        await page.get_by_label("Flag words").fill("pos = A")
        await page.get_by_role("button", name="Save profile").click()
        await page.wait_for_url(re.compile(r"/sheet-profiles$"))
        row = page.get_by_role("row", name=re.compile("Sysmex"))
        assert "Patient ID: lab no" in await row.inner_text()

        await page.goto(f"{base_url}/upload")
        await assert_accessible(page, "upload form")
        await page.set_input_files("#file", str(sheet))
        await page.get_by_label("Sheet profile").select_option("Sysmex")
        await page.get_by_role("button", name="Upload").click()
        await page.wait_for_url(re.compile(r"/batches/\w+$"))
        await page.get_by_role("button", name="Confirm: make 1 report").wait_for(timeout=30_000)
        main = await page.inner_text("main")
        assert "Nothing has been made or sent yet" in main
        assert "Ward" in await page.inner_text("#unknown-columns")
        assert await page.inner_text("#preview-reports") == "1"
        assert await db.reports.count_documents({}) == 0
        await assert_accessible(page, "batch preview")

        await page.get_by_role("button", name="Confirm: make 1 report").click()
        await page.wait_for_url(re.compile(r"/batches/\w+$"))
        assert "Confirmed by admin" in await page.inner_text("main")
        await eventually(lambda: db.reports.count_documents({}))
        await page.reload()
        badge = page.locator("[data-count=batch_status]")
        await eventually(lambda: _text_is(page, badge, "ingested"))
        await assert_accessible(page, "confirmed batch")
    assert await db.reports.count_documents({}) == 1


async def _text_is(page: Page, locator: Any, text: str) -> bool:
    if (await locator.inner_text()).strip() == text:
        return True
    await page.reload()
    return False
