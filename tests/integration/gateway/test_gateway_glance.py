"""The dashboard's home shows the state at a glance: today's and this week's reports by
status, upload-to-SMS p50/p95, the delivery rate and what waits for a person, each linking to
its list, with the week drawn as an SVG chart; the same figures from the API and the CLI."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from contracts.v1 import utcnow
from services.gateway.accounts_store import ApiTokens
from services.infra.database import Database
from services.infra.settings import Settings
from tests.axe import serious_violations
from tests.integration.gateway.test_gateway_audit import browser_signed_in_as
from tests.security.test_audit_chain import resultflow
from tests.support import chromium, eventually, report_document, screenshot_path


async def a_week_of_reports(db: Database) -> None:
    """Today: a batch uploaded 10 minutes ago whose three reports were texted 40, 60 and 600
    seconds after the upload, one held and one failed; an LIS report made 8 days ago."""
    now = utcnow()
    uploaded = now - timedelta(minutes=10)
    await db.batches.insert_one({"_id": "b-1", "uploaded_at": uploaded, "filename": "x.xlsx"})
    documents: list[dict[str, Any]] = []

    def report(**fields: Any) -> dict[str, Any]:
        return report_document(patient={"patient_id": f"P-{len(documents)}"}, **fields)

    for seconds in (40, 60, 600):
        history = [
            {"status": "received", "at": uploaded, "reason": ""},
            {"status": "notified", "at": uploaded + timedelta(seconds=seconds), "reason": ""},
        ]
        documents.append(
            report(status="delivered", batch_id="b-1", created_at=uploaded, history=history)
        )
    documents.append(report(status="held", batch_id="b-1", created_at=uploaded))
    documents.append(report(status="failed", batch_id="b-1", created_at=uploaded))
    documents.append(report(status="failed", created_at=now - timedelta(days=8)))
    await db.reports.insert_many(documents)
    sms = [("delivered", now), ("delivered", now), ("undelivered", now), ("unknown", now)]
    await db.notifications.insert_many(
        [
            {
                "_id": uuid.uuid4().hex,
                "report_id": f"r-{i}",
                "version": 1,
                "purpose": "report",
                "status": s,
                "created_at": at,
            }
            for i, (s, at) in enumerate(sms)
        ]
    )


async def test_the_api_and_the_cli_give_the_glance_figures(
    admin: TestClient[Any, Any], db: Database, settings: Settings
) -> None:
    await a_week_of_reports(db)
    _, token = await ApiTokens(db).create("admin")
    glance = await (
        await admin.get("/api/v1/glance", headers={"Authorization": f"Bearer {token}"})
    ).json()
    assert glance["today"] == {"delivered": 3, "held": 1, "failed": 1}
    assert glance["upload_to_sms_p50_seconds"] == 60.0
    assert glance["upload_to_sms_p95_seconds"] == 600.0
    assert glance["delivery_rate"] == 2 / 3  # of the SMS with a final answer
    assert (glance["held"], glance["failed_this_week"], glance["unknown_sms"]) == (1, 1, 1)
    assert len(glance["days"]) == 7 and glance["days"][-1]["reports"]["sent"] == 3

    code, output = await resultflow(settings, "reports", "glance")
    assert code == 0, output
    assert json.loads(output)["today"] == glance["today"]


async def test_the_home_page_shows_the_glance_live_and_each_figure_opens_its_list(
    admin: TestClient[Any, Any], db: Database, tmp_path: Path
) -> None:
    await a_week_of_reports(db)
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 1000}, bypass_csp=True)
        base_url = await browser_signed_in_as(admin, page)
        glance = page.locator("#glance")

        async def counted() -> str | None:  # signing in drew the glance before the reports
            await page.goto(f"{base_url}/")
            text = await glance.inner_text()
            return text if re.search(r"Today\s+5 reports", text) else None

        text = await eventually(counted, timeout=15, interval=1)
        assert "60 s median" in text and "10 min for 95 in 100" in text
        assert "66.7 %" in text and "SMS of unknown outcome: 1" in text
        chart = glance.get_by_role("img", name=re.compile("Reports made on each of the last 7"))
        assert await chart.is_visible()
        assert await serious_violations(page) == []
        await page.screenshot(path=screenshot_path("dashboard.png", tmp_path), full_page=True)

        late = report_document(status="failed", batch_id="b-1", patient={"patient_id": "P-9"})
        await db.reports.insert_one(late)

        async def refreshed() -> bool:  # what the page fetches live (counted every 5 s)
            glance = await page.request.get(f"{base_url}/glance")
            return "Failed this week: 2" in await glance.text()

        await eventually(refreshed, timeout=15, interval=1)

        await glance.get_by_role("link", name="Failed this week: 1").click()
        await page.wait_for_url(re.compile(r"/reports\?status=failed&made_since="))
        rows = page.locator("table tbody tr")
        assert await rows.count() == 2  # this week's; not the one made 8 days ago
