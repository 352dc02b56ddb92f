"""An admin manages the lab's report templates in a real browser: uploads a letterhead whose
own placeholder the check does not know, maps it on the version's page, previews the version
with sample data, makes it active and chooses it for a test in the choice rules."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from services.infra.database import Database
from services.infra.template_rules import TemplateRuleStore
from tests.axe import serious_violations
from tests.integration.gateway.test_gateway_audit import browser_signed_in_as
from tests.support import chromium, screenshot_path
from tests.template_files import lab_template


async def test_an_admin_uploads_maps_previews_activates_and_chooses_a_template(
    admin: TestClient[Any, Any], db: Database, tmp_path: Path
) -> None:
    docx = tmp_path / "letterhead.docx"
    docx.write_bytes(lab_template(body="Dear {{ patient_name }},"))
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        base_url = await browser_signed_in_as(admin, page)
        await page.goto(f"{base_url}/templates")
        await page.get_by_label("Name").fill("letterhead")
        await page.set_input_files("input[type=file]", str(docx))
        await page.click("button:text('Upload and check')")
        await page.wait_for_url(f"{base_url}/templates/letterhead")
        alert = await page.get_by_role("alert").inner_text()
        assert "This version cannot be used" in alert and "patient_name" in alert
        assert await page.locator("text=Make version 1 active").count() == 0
        assert await serious_violations(page) == []

        await page.get_by_label("What patient_name shows").select_option("patient.name")
        await page.click("button:text('Save mapping and check again')")
        await page.wait_for_url(f"{base_url}/templates/letterhead#v1")
        assert "Check passed" in await page.get_by_role("status").inner_text()
        shot = screenshot_path("template-version.png", tmp_path)
        await page.screenshot(path=shot, full_page=True)

        preview = await page.request.get(f"{base_url}/templates/letterhead/1/preview.pdf")
        assert preview.ok and (await preview.body()).startswith(b"%PDF-")
        pdf = tmp_path / "preview.pdf"
        pdf.write_bytes(await preview.body())
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        assert "Dear " in text and "Laboratory report" in text  # the mapping applied
        page_one = screenshot_path("template-preview.png", tmp_path).with_suffix("")
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(pdf), str(page_one)],
                       check=True)  # fmt: skip

        await page.click("button:text('Make version 1 active')")
        await page.wait_for_url(f"{base_url}/templates/letterhead")
        assert await page.locator("#v1 .badge", has_text="active").count() == 1

        await page.goto(f"{base_url}/template-rules")
        await page.get_by_label("Rule 1: test or panel").fill("HbA1c")
        await page.get_by_label("Rule 1: template").fill("letterhead")
        await page.click("button:text('Save rules')")
        await page.wait_for_url(f"{base_url}/template-rules")
        assert await serious_violations(page) == []
        await page.screenshot(path=screenshot_path("template-rules.png", tmp_path), full_page=True)
        await page.goto(f"{base_url}/templates")
        await page.screenshot(path=screenshot_path("templates.png", tmp_path), full_page=True)

    assert await TemplateRuleStore(db).get() == [
        {"test": "HbA1c", "language": "", "template": "letterhead"}
    ]
