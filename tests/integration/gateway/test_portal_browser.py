"""The patient portal in a real browser at phone and desktop sizes: the results are a page
(no PDF plug-in needed), the token leaves the address bar, every page is axe-core clean."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page

from services.infra.service import Resources
from tests.axe import serious_violations
from tests.integration.gateway.test_gateway_portal import notified_report
from tests.support import chromium

SIZES = {"phone": (390, 844), "desktop": (1280, 800)}
RESULTS = [
    {
        "test": "Potassium",
        "value": "6.9",
        "unit": "mmol/L",
        "reference_range": "3.5-5.1",
        "flag": "HH",
    },
    {
        "test": "Haemoglobin",
        "value": "10.1",
        "unit": "g/dL",
        "reference_range": "12.0-16.0",
        "flag": "L",
    },
    {"test": "Glucose", "value": "5.4", "unit": "mmol/L", "reference_range": "3.9-5.6", "flag": ""},
]


@pytest.fixture
def base_url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("")).rstrip("/")


async def enter_date_of_birth(page: Page, day: str, month: str, year: str) -> None:
    await page.get_by_label("Day").fill(day)
    await page.get_by_label("Month").fill(month)
    await page.get_by_label("Year").fill(year)
    await page.click("button[type=submit]")


async def assert_accessible(page: Page, what: str) -> None:
    violations = await serious_violations(page)
    assert violations == [], f"{what}: {violations}"


@pytest.mark.parametrize("size", list(SIZES))
async def test_results_show_as_a_table_without_a_pdf_plugin_and_the_url_loses_the_token(
    base_url: str, resources: Resources, size: str
) -> None:
    _, token = await notified_report(
        resources, results=RESULTS, comments="Please repeat the potassium test."
    )
    width, height = SIZES[size]
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": width, "height": height}, bypass_csp=True)
        await page.goto(f"{base_url}/r/{token}")
        assert "This link works until" in await page.inner_text("main")
        await assert_accessible(page, "check page")

        await enter_date_of_birth(page, "1", "1", "1990")  # wrong first
        assert "does not match" in await page.inner_text("main")
        await assert_accessible(page, "check page with an error")

        await enter_date_of_birth(page, "17", "05", "1980")
        await page.wait_for_url(re.compile(r"/portal/report$"))
        assert token not in page.url
        table = page.get_by_role("table", name="Your results")
        assert await table.is_visible()
        for shown in ("Potassium", "6.9 mmol/L", "Very high", "Low", "Within range"):
            assert await table.get_by_text(shown).first.is_visible(), shown
        main = await page.inner_text("main")
        assert "Please repeat the potassium test." in main
        assert await page.locator("iframe, object, embed").count() == 0
        assert await page.get_by_role("link", name="Download PDF").is_visible()
        # Nothing sideways on a phone: the page fits its width.
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        await page.screenshot(path=f"/tmp/portal-report-{size}.png", full_page=True)
        await assert_accessible(page, "report page")
        # No link or resource on the page carries the token either.
        assert token not in await page.content()


@pytest.mark.parametrize("size", list(SIZES))
async def test_closed_link_and_ended_session_pages_are_accessible_and_say_what_to_do(
    base_url: str, resources: Resources, size: str
) -> None:
    _, expired = await notified_report(resources, expires_in=timedelta(minutes=-1))
    width, height = SIZES[size]
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": width, "height": height}, bypass_csp=True)
        await page.goto(f"{base_url}/r/{expired}")
        main = await page.inner_text("main")
        assert "This link has expired" in main and resources.settings.lab_phone in main
        await page.screenshot(path=f"/tmp/portal-expired-{size}.png", full_page=True)
        await assert_accessible(page, "expired link page")

        await page.goto(f"{base_url}/portal/report")
        assert "Please open your link again" in await page.inner_text("main")
        await assert_accessible(page, "session ended page")
