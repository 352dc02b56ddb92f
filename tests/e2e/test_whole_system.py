"""The whole path, every service its own process: upload -> SMS -> portal -> PDF in a browser."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from devtools.admin_client import wait_for_batch
from devtools.demo import demo_rows, demo_sheet, sheet_of
from tests.e2e.system import System
from tests.support import chromium, eventually

pytestmark = pytest.mark.e2e
PATIENTS = 20


async def updated_sms(db: Any) -> list[dict[str, Any]] | None:
    found = await db.outbox.find({"body": {"$regex": "was updated"}}).to_list()
    return found or None


async def test_uploaded_sheet_reaches_every_patient_and_opens_as_pdf_in_a_browser(
    system: System, tmp_path: Path
) -> None:
    db = system.db
    batch_id = await system.upload("results.xlsx", demo_sheet(PATIENTS))

    async def every_patient_texted() -> bool:
        return await db.outbox.count_documents({}) >= PATIENTS

    await eventually(every_patient_texted, timeout=240, interval=0.5)
    batch = await wait_for_batch(db, batch_id, timeout=60)
    assert (batch["reports_created"], batch["rejected_rows"]) == (PATIENTS, [])
    assert (
        await db.reports.count_documents({"batch_id": batch_id, "status": "notified"}) == PATIENTS
    )
    assert len(await db.outbox.distinct("to")) == PATIENTS  # one SMS each, none twice

    sms = await db.outbox.find_one({})
    assert sms is not None
    link = re.search(r"https?://\S+", sms["body"])
    assert link is not None
    report = await db.reports.find_one({"patient.phone": sms["to"]})
    assert report is not None
    name, birth = report["patient"]["name"], report["patient"]["date_of_birth"]
    value = next(r["value"] for r in report["results"] if r["flag"])

    async with chromium() as browser:
        page = await browser.new_page(accept_downloads=True)
        await page.goto(link.group(0))
        year, month, day = birth.split("-")
        await page.get_by_label("Day").fill(day)
        await page.get_by_label("Month").fill(month)
        await page.get_by_label("Year").fill(year)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r"/report$"))
        await page.screenshot(path=str(tmp_path / "portal.png"))
        async with page.expect_download() as download_info:
            await page.click("text=Download PDF")
        download = await download_info.value
        pdf = Path(await download.path()).read_bytes()

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert name in text
    assert value in text
    actions = await db.audit.distinct("action", {"report_id": report["_id"]})
    # The results page itself is the view (no PDF plug-in needed); the PDF was downloaded.
    assert {"portal.opened", "report.downloaded"} <= set(actions)
    # Second act: the lab corrects this patient's potassium and uploads just their rows.
    patient_id = report["patient"]["patient_id"]
    rows = [list(row) for row in demo_rows(PATIENTS) if row[0] == patient_id]
    potassium = next(row for row in rows if row[6] == "Potassium")
    potassium[7], potassium[10] = ("4.4" if potassium[7] != "4.4" else "4.5"), ""
    await system.upload("correction.xlsx", sheet_of(rows))
    [update] = await eventually(lambda: updated_sms(db), timeout=120, interval=0.5)
    assert update["to"] == sms["to"]
    new_link = re.search(r"https?://\S+", update["body"])
    assert new_link is not None
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(link.group(0))
        assert "A newer report replaced this one" in await page.inner_text("main")
        await page.goto(new_link.group(0))
        await page.get_by_label("Day").fill(day)
        await page.get_by_label("Month").fill(month)
        await page.get_by_label("Year").fill(year)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r"/report$"))
        assert "This is version 2 of your report" in await page.inner_text("main")
    assert await db.outbox.count_documents({}) == PATIENTS + 1  # nobody else was texted
    versions = await db.reports.find({"patient.patient_id": patient_id}).sort("version").to_list()
    assert [(v["version"], v["status"]) for v in versions] == [
        (1, "superseded"),
        (2, "notified"),
    ]
    system.stack.check_alive()  # nothing crashed along the way

    # No patient data in any service's log: names, phones, dates of birth, link tokens.
    logs = "".join(p.read_text() for p in system.stack.log_dir.glob("*.log"))
    assert f'"correlation_id": "{report["correlation_id"]}"' in logs
    patients = await db.reports.find({}, {"patient": 1}).to_list()
    for patient in (r["patient"] for r in patients):
        for value in (patient["name"], patient["phone"], patient["phone"][3:]):
            assert value not in logs
        assert patient["date_of_birth"] not in logs
    assert link.group(0).rsplit("/", 1)[1] not in logs
