"""Stuck work is visible: a report that has not moved on for longer than its stage allows is
listed, counted on the dashboard, flagged on its page and sent on again by a retry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from contracts.v1 import utcnow
from services.gateway.accounts_store import ApiTokens, create_user
from services.infra.database import Database
from tests.support import PASSWORD, csrf_from, drain, log_in, report_document


async def test_a_report_stuck_after_rendering_is_listed_flagged_and_sent_on_again(
    client: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    await create_user(db, "admin", PASSWORD)
    long_ago = utcnow() - timedelta(minutes=40)
    stuck = report_document(status="rendered", updated_at=long_ago, docx_file_id="f1")
    moving = report_document(status="rendered")  # rendered a moment ago: on its way
    waiting = report_document(status="held", updated_at=long_ago)  # waits for a person
    await db.reports.insert_many([stuck, moving, waiting])
    _, token = await ApiTokens(db).create("admin")
    auth = {"Authorization": f"Bearer {token}"}

    listed = await (await client.get("/api/v1/reports?stuck=1", headers=auth)).json()
    assert [r["id"] for r in listed["items"]] == [stuck["_id"]]
    refused = await client.post(f"/api/v1/reports/{moving['_id']}/retry", headers=auth)
    assert refused.status == 409 and "failed or stuck" in (await refused.json())["detail"]

    assert (await log_in(client)).url.path == "/"
    dashboard = await (await client.get("/")).text()
    assert "1 report(s) stuck" in dashboard
    page = await (await client.get(f"/reports/{stuck['_id']}")).text()
    assert "has not moved on from rendered" in page
    retried = await client.post(
        f"/reports/{stuck['_id']}/retry",
        data={"csrf_token": await csrf_from(client, f"/reports/{stuck['_id']}")},
    )
    assert retried.status == 200
    [command] = await drain(amqp_url, "convert.report")
    assert command["report_id"] == stuck["_id"]
    entry = await db.audit.find_one({"action": "report.stuck_retried"})
    assert entry and entry["detail"]["stage"] == "rendered"


async def test_a_report_whose_sms_waits_for_quiet_hours_is_shown_waiting_not_stuck(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "admin", PASSWORD)
    long_ago = utcnow() - timedelta(hours=3)
    due = utcnow() + timedelta(hours=5)
    night = report_document(
        status="converted",
        updated_at=long_ago,
        sms_due={"at": due, "since": long_ago, "requests": [""]},
    )
    await db.reports.insert_one(night)

    assert (await log_in(client)).url.path == "/"
    page = await (await client.get(f"/reports/{night['_id']}")).text()
    assert "Its SMS waits for quiet hours to end" in page
    assert due.strftime("%Y-%m-%d %H:%M UTC") in page
    assert "has not moved on" not in page
    assert "report(s) stuck" not in await (await client.get("/")).text()
