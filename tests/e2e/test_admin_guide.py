"""What docs/admin-guide.md walks a lab administrator through, done in a real browser
against the whole running system: sign in with a second factor, upload a sheet with one bad
row, read the preview and confirm it, follow the batch until every complete report is texted,
find a report and its timeline, look at the home page's glance and the release queue, where
the patient with the rejected row waits. Each step's screenshot is the
guide's picture (refreshed with RESULTFLOW_DOC_SCREENSHOTS=1)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from playwright.async_api import Page

from devtools.demo import demo_rows, sheet_of
from tests.axe import serious_violations
from tests.e2e.system import PASSWORD, System
from tests.support import browser_log_in, chromium, eventually, screenshot_path

pytestmark = pytest.mark.e2e
PATIENTS = 3


async def shot(page: Page, name: str, tmp_path: Path) -> None:
    assert await serious_violations(page) == [], name
    await page.screenshot(path=screenshot_path(f"guide-{name}.png", tmp_path), full_page=True)


async def test_an_administrator_uploads_previews_confirms_and_follows_a_batch_to_the_patients(
    system: System, tmp_path: Path
) -> None:
    rows = demo_rows(PATIENTS, sample_date=date(2026, 11, 20))
    rows[1][4] = "12345"  # one result row with a mobile number that cannot be texted
    sheet = tmp_path / "results.xlsx"
    sheet.write_bytes(sheet_of(rows))
    base = system.base_url
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        await browser_log_in(page, base, "admin", PASSWORD)

        await page.goto(f"{base}/upload")
        await page.set_input_files("#file", str(sheet))
        await shot(page, "upload", tmp_path)
        await page.get_by_role("button", name="Upload").click()
        await page.wait_for_url(re.compile(r"/batches/\w+$"))
        batch_url = page.url
        confirm = page.get_by_role("button", name=re.compile(r"Confirm: make \d+ report"))
        await confirm.wait_for(timeout=60_000)
        assert (
            "12345" in await page.inner_text("main")
            or "row 3" in (await page.inner_text("main")).lower()
        )
        await shot(page, "preview", tmp_path)
        await confirm.click()
        await page.wait_for_url(batch_url)

        async def everyone_texted() -> bool:
            return await system.db.outbox.count_documents({}) >= PATIENTS - 1

        await eventually(everyone_texted, timeout=240, interval=0.5)
        await page.reload()
        main = await page.inner_text("main")
        assert "Rejected rows" in main or "rejected" in main.lower()
        await shot(page, "batch", tmp_path)

        await page.goto(f"{base}/reports")
        await shot(page, "reports", tmp_path)
        await page.locator("table tbody tr a").first.click()
        await page.wait_for_url(re.compile(r"/reports/\w+$"))
        assert "notified" in await page.inner_text("main")
        await shot(page, "report", tmp_path)

        async def counted() -> str | None:  # the glance is counted at most every 5 s
            await page.goto(f"{base}/")
            text = await page.locator("#glance").inner_text()
            return text if re.search(rf"Today\s+{PATIENTS} reports", text) else None

        glance = await eventually(counted, timeout=15, interval=1)
        # The patient with the rejected row waits for a person: their report is incomplete.
        assert "needs_attention 1" in glance and f"notified {PATIENTS - 1}" in glance
        await shot(page, "home", tmp_path)

        await page.goto(f"{base}/queue")
        assert "Release queue" in await page.inner_text("main")
        await shot(page, "queue", tmp_path)
