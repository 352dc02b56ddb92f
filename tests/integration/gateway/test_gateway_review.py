"""Reviewers' pages in a real browser (Debian's Chromium, driven by Playwright): the release
queue, releasing and withdrawing a report, and the release rules."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page

from services.gateway.accounts_store import create_user
from services.infra.database import Database
from tests.support import PASSWORD, browser_log_in, chromium, drain, report_document

CRITICAL = {
    "action": "review",
    "until": None,
    "reason": "Potassium 6.9 (HH): critical value, phone the patient first",
    "rule": None,
}


async def signed_in(page: Page, base_url: str) -> None:
    await browser_log_in(page, base_url)
    await page.wait_for_url(f"{base_url}/")


@pytest.fixture
async def base_url(client: TestClient[Any, Any], db: Database) -> str:
    await create_user(db, "admin", PASSWORD)
    return str(client.make_url("")).rstrip("/")


async def test_the_release_queue_shows_why_each_report_waits_and_releases_the_ticked_ones(
    base_url: str, db: Database, amqp_url: str
) -> None:
    held = report_document(status="held", patient={"patient_id": "P-HELD"}, hold=CRITICAL)
    incomplete = report_document(
        status="needs_attention",
        patient={"patient_id": "P-GAP"},
        rejected_rows=[{"row": 12, "reason": "Flag 'A' is not one of H, L, HH, LL or empty"}],
    )
    await db.reports.insert_many([held, incomplete])
    async with chromium() as browser:
        page = await browser.new_page()
        await signed_in(page, base_url)
        await page.click("text=Release queue")
        table = page.locator("table")
        assert "phone the patient first" in await table.inner_text()
        assert "12 (Flag 'A' is not one of" in await table.inner_text()

        await page.get_by_label("Select P-GAP").check()
        await page.click("text=Release the selected reports")
        assert "say why it may go out as it is" in await page.locator(".alert").inner_text()

        await page.get_by_label("Select P-GAP").check()
        await page.get_by_label("Select P-HELD").check()
        await page.get_by_label("Reason").fill("row 12 was a duplicate; patient phoned")
        await page.click("text=Release the selected reports")
        await page.wait_for_url(f"{base_url}/queue")
        assert "Nothing waits for release" in await page.inner_text("main")

    statuses = {r["_id"]: r["status"] async for r in db.reports.find()}
    assert statuses == {held["_id"]: "released", incomplete["_id"]: "released"}
    commands = await drain(amqp_url, "notify.patient")
    assert sorted(c["report_id"] for c in commands) == sorted([held["_id"], incomplete["_id"]])


async def test_a_report_is_released_or_withdrawn_from_its_page(base_url: str, db: Database) -> None:
    held = report_document(status="held", patient={"patient_id": "P-1"}, hold=CRITICAL)
    sent = report_document(status="notified", patient={"patient_id": "P-2"})
    await db.reports.insert_many([held, sent])
    async with chromium() as browser:
        page = await browser.new_page()
        await signed_in(page, base_url)
        await page.goto(f"{base_url}/reports/{held['_id']}")
        assert "Held: Potassium 6.9 (HH)" in await page.inner_text(".alert")
        await page.click("button:text('Release')")
        await page.wait_for_url(f"{base_url}/reports/{held['_id']}")
        assert "Released by admin" in await page.inner_text("main")

        await page.goto(f"{base_url}/reports/{sent['_id']}")
        await page.click("text=Withdraw this report")
        await page.get_by_label("Reason (required)").fill("sent to the wrong patient")
        await page.click("button:text('Withdraw')")
        await page.wait_for_url(f"{base_url}/reports/{sent['_id']}")
        assert "Withdrawn by admin" in await page.inner_text(".alert")
    withdrawn = await db.reports.find_one({"_id": sent["_id"]})
    assert withdrawn is not None and withdrawn["status"] == "withdrawn"
    audit = await db.audit.find_one({"action": "report.withdrawn"})
    assert audit is not None and audit["detail"]["reason"] == "sent to the wrong patient"


async def test_release_rules_are_added_on_their_page_and_nonsense_is_named(
    base_url: str, db: Database
) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await signed_in(page, base_url)
        await page.click("text=Release rules")
        await page.get_by_label("Test of rule 1").fill("HIV 1/2 Ab")
        await page.get_by_label("Action of rule 1").select_option("hold")
        await page.click("text=Save the rules")
        assert "Rule 1: Value error, a hold needs hours of at least 1" in await page.inner_text(
            ".alert"
        )
        assert await page.get_by_label("Test of rule 1").input_value() == "HIV 1/2 Ab"

        await page.get_by_label("Hours of rule 1").fill("48")
        await page.get_by_label("Note of rule 1").fill("counselling first")
        await page.get_by_label("Test of rule 2").fill("Glucose")
        await page.get_by_label("Flags of rule 2").fill("ll, hh")
        await page.get_by_label("Action of rule 2").select_option("send")
        await page.click("text=Save the rules")
        await page.wait_for_url(f"{base_url}/release-rules")
        assert await page.get_by_label("Hours of rule 1").input_value() == "48"
        assert await page.get_by_label("Flags of rule 2").input_value() == "LL, HH"
    stored = await db.release_rules.find_one()
    assert stored is not None
    assert stored["rules"] == [
        {
            "test": "HIV 1/2 Ab",
            "flags": [],
            "action": "hold",
            "hours": 48,
            "critical": False,
            "note": "counselling first",
        },
        {
            "test": "Glucose",
            "flags": ["LL", "HH"],
            "action": "send",
            "hours": 0,
            "critical": False,
            "note": "",
        },
    ]


async def test_a_batch_is_cancelled_from_its_page_and_the_sent_reports_are_listed(
    base_url: str, db: Database
) -> None:
    batch_id = "b" * 32
    await db.batches.insert_one(
        {
            "_id": batch_id,
            "lab_id": "demo-lab",
            "filename": "wrong.xlsx",
            "status": "ingested",
            "uploaded_by": "admin",
            "rows_total": 2,
            "rejected_rows": [],
        }
    )
    pending = report_document(status="held", batch_id=batch_id, patient={"patient_id": "P-1"})
    sent = report_document(status="notified", batch_id=batch_id, patient={"patient_id": "P-2"})
    await db.reports.insert_many([pending, sent])
    async with chromium() as browser:
        page = await browser.new_page()
        await signed_in(page, base_url)
        await page.goto(f"{base_url}/batches/{batch_id}")
        await page.click("text=Cancel this batch")
        await page.get_by_label("Reason (required)").fill("uploaded the wrong file")
        await page.click("button:text('Cancel the batch')")
        await page.wait_for_url(f"{base_url}/batches/{batch_id}/cancel")
        text = await page.inner_text("main")
        assert "1 report withdrawn" in text and "already sent (notified)" in text
    statuses = {r["_id"]: r["status"] async for r in db.reports.find()}
    assert statuses == {pending["_id"]: "withdrawn", sent["_id"]: "notified"}


async def test_a_double_clicked_resend_asks_for_one_sms(
    base_url: str, db: Database, amqp_url: str
) -> None:
    report = report_document(status="notified", patient={"patient_id": "P-9"})
    await db.reports.insert_one(report)
    await db.notifications.insert_one(
        {
            "_id": "n1",
            "report_id": report["_id"],
            "version": 1,
            "purpose": "result_ready",
            "status": "delivered",
            "provider": "outbox",
            "attempts": 1,
            "created_at": report["created_at"],
        }
    )
    async with chromium() as browser:
        page = await browser.new_page()
        await signed_in(page, base_url)
        await page.goto(f"{base_url}/reports/{report['_id']}")
        await page.click("text=Text the patient again")
        form = page.locator("form[action$='/resend']")
        request_id = await form.locator("input[name=request_id]").input_value()
        # A double click: the very same form posted twice before the first answer.
        statuses = await page.evaluate(
            """async () => {
                const form = document.querySelector("form[action$='/resend']");
                const post = () => fetch(form.action, {method: "POST", body: new FormData(form)});
                const answers = await Promise.all([post(), post()]);
                return answers.map(answer => answer.status);
            }"""
        )
        assert statuses == [200, 200]  # each followed its redirect back to the report
    commands = await drain(amqp_url, "notify.patient")
    assert {c["request_id"] for c in commands} == {request_id}


async def test_staff_find_reports_and_batches_with_the_list_filters(
    base_url: str, db: Database
) -> None:
    ada = report_document(patient={"patient_id": "P-ADA", "name": "Ada Okafor"})
    old = report_document(
        patient={"patient_id": "P-OLD", "name": "Ada Okafor"}, sample_date="2025-01-05"
    )
    ben = report_document(patient={"patient_id": "P-BEN", "name": "Ben Lindqvist"})
    await db.reports.insert_many([ada, old, ben])
    for n, name in enumerate(["monday.xlsx", "tuesday.csv"]):
        await db.batches.insert_one(
            {
                "_id": f"batch-{n}",
                "lab_id": "demo-lab",
                "filename": name,
                "status": "ingested",
                "uploaded_by": "admin",
                "uploaded_at": ada["created_at"],
            }
        )
    async with chromium() as browser:
        page = await browser.new_page()
        await signed_in(page, base_url)
        await page.get_by_label("File name").fill("TUES")
        await page.click("text=Filter")
        assert "tuesday.csv" in await page.inner_text("main")
        assert "monday.xlsx" not in await page.inner_text("main")

        await page.goto(f"{base_url}/reports")
        await page.get_by_label("Name, patient id or accession").fill("okafor")
        await page.get_by_label("Sampled from").fill("2026-01-01")
        await page.click("text=Filter")
        table = await page.inner_text("table")
        assert "P-ADA" in table and "P-OLD" not in table and "P-BEN" not in table
