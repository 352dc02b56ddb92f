"""The patient portal in each shipped language, in a real browser at phone size (390x844)
and desktop size: the page says its language (`<html lang>`), the text, flags and dates
are the patient's language, the results table is visible, the token leaves the address
bar, and axe-core finds no serious or critical WCAG 2.2 AA violation.

With RESULTFLOW_DOC_SCREENSHOTS=1 the phone-size report pages are kept as
docs/screenshots/portal-<language>-phone.png and the axe-core results of every page as
docs/screenshots/portal-axe-results.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page

from contracts.v1 import utcnow
from services.infra.languages import SHIPPED
from services.infra.service import Resources
from services.infra.tokens import new_token, token_hash
from tests.axe import AXE_JS, SERIOUS, WCAG_AA
from tests.integration.gateway.test_gateway_portal import small_pdf
from tests.support import DOC_SCREENSHOTS, chromium, report_document, screenshot_path

SIZES = {"phone": (390, 844), "desktop": (1280, 800)}
AXE_RESULTS = DOC_SCREENSHOTS / "portal-axe-results.json"
RESULTS = [
    {"test": "Potassium", "value": "6.9", "unit": "mmol/L", "reference_range": "3.5-5.1"},
    {"test": "Haemoglobin", "value": "10.1", "unit": "g/dL", "reference_range": "12.0-16.0"},
    {"test": "Glucose", "value": "5.4", "unit": "mmol/L", "reference_range": "3.9-5.6"},
]
for result, flag in zip(RESULTS, ("HH", "L", ""), strict=True):
    result["flag"] = flag
# What each language's pages must say (the catalogs' words, the dates as Babel writes them).
EXPECTED: dict[str, dict[str, Any]] = {
    "en": {
        "check": "To protect your privacy, please confirm your date of birth.",
        "table": "Your results",
        "flags": ("Very high: the lab may call you", "Low", "Within range"),
        "sample": "Sample taken on 2 March 2026.",
        "day": "Day",
    },
    "fr": {
        "check": "Pour protéger votre vie privée, veuillez confirmer votre date de naissance.",
        "table": "Vos résultats",
        "flags": ("Très élevé : le laboratoire pourra vous appeler", "Bas", "Dans les valeurs"),
        "sample": "Prélèvement effectué le 2 mars 2026.",
        "day": "Jour",
    },
    "es": {
        "check": "Para proteger su privacidad, confirme su fecha de nacimiento.",
        "table": "Sus resultados",
        "flags": ("Muy alto: el laboratorio puede llamarle", "Bajo", "Dentro del intervalo"),
        "sample": "Muestra tomada el 2 de marzo de 2026.",
        "day": "Día",
    },
    "sw": {
        "check": "Ili kulinda faragha yako, tafadhali thibitisha tarehe yako ya kuzaliwa.",
        "table": "Matokeo yako",
        "flags": ("Juu sana: maabara inaweza kukupigia simu", "Chini", "Ndani ya kiwango"),
        "sample": "Sampuli ilichukuliwa tarehe 2 Machi 2026.",
        "day": "Siku",
    },
}


@pytest.fixture
def base_url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("")).rstrip("/")


async def report_in(resources: Resources, language: str) -> str:
    """A texted report of a patient who speaks `language`; returns its link token."""
    token = new_token()
    pdf = small_pdf()
    report_id = uuid.uuid4().hex
    pdf_id = await resources.files.put("report.pdf", pdf, {"kind": "pdf", "report_id": report_id})
    await resources.db.reports.insert_one(
        report_document(
            report_id=report_id,
            status="notified",
            patient={"name": "Ada Example", "date_of_birth": "1980-05-17", "language": language},
            results=RESULTS,
            sample_date="2026-03-02",
            pdf_file_id=pdf_id,
            pdf_sha256=hashlib.sha256(pdf).hexdigest(),
            access={
                "token_hash": token_hash(token),
                "expires_at": utcnow() + timedelta(days=30),
                "failed_attempts": 0,
                "locked": False,
            },
        )
    )
    return token


async def axe(page: Page) -> dict[str, Any]:
    """axe-core's WCAG 2.2 AA run on the page as it is now, summarised."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE_JS))
    result = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_AA
    )
    return {
        "passes": len(result["passes"]),
        "violations": [
            {"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])}
            for v in result["violations"]
        ],
        "incomplete": len(result["incomplete"]),
    }


def serious(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in summary["violations"] if v["impact"] in SERIOUS]


def record(language: str, size: str, page: str, summary: dict[str, Any]) -> None:
    """Keep the axe-core results in the docs, one entry per language, size and page (when
    the documentation's pictures are refreshed: `tests.support.screenshot_path`)."""
    if os.environ.get("RESULTFLOW_DOC_SCREENSHOTS") != "1":
        return
    results = json.loads(AXE_RESULTS.read_text()) if AXE_RESULTS.exists() else {}
    results.setdefault(language, {}).setdefault(size, {})[page] = summary
    AXE_RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("language", SHIPPED)
async def test_the_portal_reads_in_the_patient_s_language_and_stays_accessible(
    base_url: str, resources: Resources, language: str, size: str, tmp_path: Path
) -> None:
    token = await report_in(resources, language)
    expected = EXPECTED[language]
    width, height = SIZES[size]
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": width, "height": height}, bypass_csp=True)
        await page.goto(f"{base_url}/r/{token}")
        assert await page.get_attribute("html", "lang") == language
        assert expected["check"] in await page.inner_text("main")
        check_page = await axe(page)
        assert serious(check_page) == [], check_page

        await page.get_by_label(expected["day"], exact=True).fill("17")
        await page.fill("input[name=month]", "05")
        await page.fill("input[name=year]", "1980")
        await page.click("form[action^='/r/'] button[type=submit]")
        await page.wait_for_url(re.compile(r"/portal/report$"))
        assert token not in page.url
        assert await page.get_attribute("html", "lang") == language
        table = page.get_by_role("table", name=expected["table"])
        assert await table.is_visible()
        for shown in ("Potassium", "6.9 mmol/L", *expected["flags"]):
            assert await table.get_by_text(shown).first.is_visible(), shown
        assert expected["sample"] in await page.inner_text("main")
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        report_page = await axe(page)
        assert serious(report_page) == [], report_page
        assert token not in await page.content()
        if size == "phone":
            shot = screenshot_path(f"portal-{language}-phone.png", tmp_path)
            await page.screenshot(path=shot)
    record(language, size, "check", check_page)
    record(language, size, "report", report_page)


async def test_the_patient_can_switch_the_portal_to_another_language(
    base_url: str, resources: Resources
) -> None:
    token = await report_in(resources, "en")
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 390, "height": 844}, bypass_csp=True)
        await page.goto(f"{base_url}/r/{token}")
        await page.get_by_role("navigation", name="Language").get_by_text("Kiswahili").click()
        assert await page.get_attribute("html", "lang") == "sw"
        await page.get_by_label("Siku", exact=True).fill("1")
        await page.fill("input[name=month]", "1")
        await page.fill("input[name=year]", "1990")
        await page.click("form[action^='/r/'] button[type=submit]")
        # The wrong answer is told in the language the patient chose.
        assert "hailingani na kumbukumbu zetu" in await page.inner_text("main")
        assert await page.get_attribute("html", "lang") == "sw"

        await page.get_by_label("Siku", exact=True).fill("17")
        await page.fill("input[name=month]", "05")
        await page.fill("input[name=year]", "1980")
        await page.click("form[action^='/r/'] button[type=submit]")
        await page.wait_for_url(re.compile(r"/portal/report\?lang=sw$"))
        assert await page.get_by_role("table", name="Matokeo yako").is_visible()
        await page.get_by_role("navigation", name="Lugha").get_by_text("Español").click()
        assert await page.get_attribute("html", "lang") == "es"
        assert await page.get_by_role("table", name="Sus resultados").is_visible()
        assert token not in page.url
