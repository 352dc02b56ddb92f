"""The patient portal against the MongoDB-protocol server: link, date-of-birth check, the
results as a page, the PDF; the token stays in no URL after the check."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pypdf import PdfWriter

from contracts.v1 import utcnow
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.tokens import new_token, token_hash
from tests.support import csrf_from, report_document

DATE_OF_BIRTH = "1980-05-17"


def small_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


async def notified_report(
    resources: Resources,
    *,
    pdf: bytes | None = None,
    expires_in: timedelta = timedelta(days=30),
    **fields: Any,
) -> tuple[str, str]:
    """A report as notify leaves it: PDF stored, access link created. Returns (id, token)."""
    report_id = uuid.uuid4().hex
    token = new_token()
    pdf = pdf or small_pdf()
    pdf_id = await resources.files.put("report.pdf", pdf, {"kind": "pdf", "report_id": report_id})
    await resources.db.reports.insert_one(
        report_document(
            report_id=report_id,
            status="notified",
            patient={"patient_id": "P1", "name": "Ada Example", "date_of_birth": DATE_OF_BIRTH},
            sample_date="2026-03-02",
            pdf_file_id=pdf_id,
            pdf_sha256=hashlib.sha256(pdf).hexdigest(),
            access={
                "token_hash": token_hash(token),
                "expires_at": utcnow() + expires_in,
                "failed_attempts": 0,
                "locked": False,
            },
            **fields,
        )
    )
    return report_id, token


async def submit_date(client: TestClient[Any, Any], token: str, **fields: str) -> tuple[int, str]:
    csrf_token = await csrf_from(client, f"/r/{token}")
    response = await client.post(f"/r/{token}", data={"csrf_token": csrf_token, **fields})
    return response.status, await response.text()


async def test_right_date_of_birth_trades_the_token_for_a_session_and_shows_the_results(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    pdf = small_pdf()
    _, token = await notified_report(
        resources,
        pdf=pdf,
        results=[
            {
                "test": "Potassium",
                "value": "6.9",
                "unit": "mmol/L",
                "reference_range": "3.5-5.1",
                "flag": "HH",
            },
            {
                "test": "Sodium",
                "value": "140",
                "unit": "mmol/L",
                "reference_range": "135-145",
                "flag": "",
            },
        ],
        comments="Please repeat the potassium test.",
    )
    csrf_token = await csrf_from(client, f"/r/{token}")
    form = {"csrf_token": csrf_token, "day": "17", "month": "5", "year": "1980"}
    checked = await client.post(f"/r/{token}", data=form, allow_redirects=False)
    assert checked.status == 303 and checked.headers["Location"] == "/portal/report"
    cookie = checked.cookies["rf_portal"]
    assert cookie["path"] == "/portal" and cookie["httponly"] and cookie["samesite"] == "Strict"

    response = await client.get("/portal/report")
    page = await response.text()
    assert response.status == 200 and token not in page
    assert "<iframe" not in page and "<object" not in page and "<embed" not in page
    for shown in ("Potassium", "6.9 mmol/L", "3.5-5.1", "Very high", "Sodium", "Within range"):
        assert shown in page
    assert "Please repeat the potassium test." in page
    assert "Sample taken on 2 March 2026." in page
    assert "/portal/report.pdf?download=1" in page

    inline = await client.get("/portal/report.pdf")
    assert inline.status == 200 and await inline.read() == pdf
    assert inline.headers["X-Frame-Options"] == "DENY"  # nothing frames it any more
    download = await client.get("/portal/report.pdf?download=1")
    assert download.status == 200
    assert await download.read() == pdf
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"] == (
        'attachment; filename="laboratory-report-2026-03-02.pdf"'
    )
    assert download.headers["Cache-Control"] == "no-store"


async def test_the_check_page_says_until_when_the_link_works(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    _, token = await notified_report(resources, expires_in=timedelta(days=30))
    expires = utcnow() + timedelta(days=30)
    page = await (await client.get(f"/r/{token}")).text()
    assert f"This link works until {expires.day} {expires:%B %Y}." in page


async def test_opening_the_report_is_recorded_on_its_link(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await notified_report(resources)
    await submit_date(client, token, date_of_birth=DATE_OF_BIRTH)
    first = await db.reports.find_one({"_id": report_id})
    assert first and first["access"]["opened_at"] is not None
    await client.get("/portal/report")
    again = await db.reports.find_one({"_id": report_id})
    assert again and again["access"]["opened_at"] == first["access"]["opened_at"]


async def test_every_view_and_every_download_of_the_pdf_is_audited(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await notified_report(resources)
    status, _ = await submit_date(client, token, date_of_birth=DATE_OF_BIRTH)  # opens the page
    assert status == 200
    for path in ("report.pdf", "report.pdf", "report.pdf?download=1"):  # tab, again, save
        assert (await client.get(f"/portal/{path}")).status == 200

    # ObjectIds made in one process grow: _id order is the order of writing.
    actions = [a["action"] async for a in db.audit.find({"report_id": report_id}).sort("_id", 1)]
    assert actions == [
        "portal.check_passed",
        "portal.opened",
        "report.viewed",
        "report.viewed",
        "report.downloaded",
    ]
    viewed = await db.audit.find_one({"action": "report.viewed"})
    assert viewed and viewed["actor"] == "patient" and set(viewed["detail"]) == {"ip", "user_agent"}


async def test_date_input_in_iso_form_is_accepted_too(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    _, token = await notified_report(resources)
    status, page = await submit_date(client, token, date_of_birth=DATE_OF_BIRTH)
    assert status == 200 and "Download PDF" in page


async def test_report_is_not_shown_without_passing_the_check(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    await notified_report(resources)
    for path in ("/portal/report", "/portal/report.pdf?download=1"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 403
        assert "Open the link in the text message" in await response.text()


async def test_a_session_stops_opening_the_report_once_the_link_is_withdrawn(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    report_id, token = await notified_report(resources)
    assert (await submit_date(client, token, date_of_birth=DATE_OF_BIRTH))[0] == 200
    await resources.db.reports.update_one({"_id": report_id}, {"$set": {"status": "withdrawn"}})
    response = await client.get("/portal/report.pdf")
    assert response.status == 410 and "This report was withdrawn" in await response.text()


async def test_five_wrong_dates_lock_the_link_and_the_right_date_no_longer_opens_it(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await notified_report(resources)
    for attempt in range(1, 5):
        status, page = await submit_date(client, token, day="1", month="1", year="1990")
        assert status == 400
        left = 5 - attempt
        assert f"{left} attempt{'s' if left != 1 else ''} left" in page
    status, page = await submit_date(client, token, day="1", month="1", year="1990")
    assert status == 403 and "Too many attempts" in page

    opened = await client.get(f"/r/{token}")
    assert opened.status == 403 and "Too many attempts" in await opened.text()
    response = await client.post(
        f"/r/{token}", data={"day": "17", "month": "5", "year": "1980", "csrf_token": "x"}
    )
    assert response.status == 403
    assert (await client.get("/portal/report", allow_redirects=False)).status == 403

    report = await db.reports.find_one({"_id": report_id})
    assert report and report["access"]["locked"] is True
    actions = [a["action"] async for a in db.audit.find({"report_id": report_id})]
    assert actions.count("portal.check_failed") == 4 and actions.count("portal.locked") == 1


async def test_expired_link_says_so_and_gives_the_lab_phone(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    _, token = await notified_report(resources, expires_in=timedelta(minutes=-1))
    response = await client.get(f"/r/{token}")
    assert response.status == 410
    page = await response.text()
    assert "This link has expired" in page and resources.settings.lab_phone in page
    assert "ask for a new link" in page


async def test_unknown_link_is_not_valid(client: TestClient[Any, Any]) -> None:
    response = await client.get(f"/r/{new_token()}")
    assert response.status == 404
    assert "This link is not valid" in await response.text()


async def test_portal_pages_carry_privacy_headers(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    _, token = await notified_report(resources)
    response = await client.get(f"/r/{token}")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert "Ada Example" not in await response.text()


async def test_date_check_without_the_form_token_counts_nothing(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await notified_report(resources)
    response = await client.post(f"/r/{token}", data={"day": "17", "month": "5", "year": "1980"})
    assert response.status == 403
    assert (await client.get("/portal/report", allow_redirects=False)).status == 403
    report = await db.reports.find_one({"_id": report_id})
    assert report and report["access"]["failed_attempts"] == 0


async def test_parallel_wrong_dates_are_compared_at_most_five_times_and_then_the_link_stays_locked(
    client: TestClient[Any, Any], resources: Resources, db: Database
) -> None:
    report_id, token = await notified_report(resources)
    csrf_token = await csrf_from(client, f"/r/{token}")
    wrong = {"csrf_token": csrf_token, "day": "1", "month": "1", "year": "1990"}

    async def guess() -> int:
        response = await client.post(f"/r/{token}", data=wrong)
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(guess() for _ in range(20)))
    assert statuses.count(400) == 4 and statuses.count(403) == 16

    report = await db.reports.find_one({"_id": report_id})
    assert report and report["access"]["locked"] is True
    assert report["access"]["failed_attempts"] == 5
    actions = [a["action"] async for a in db.audit.find({"report_id": report_id})]
    # Every guess is audited: the ones compared, and those the lock refused unread.
    assert sorted(actions) == (
        ["portal.check_failed"] * 4 + ["portal.check_refused"] * 15 + ["portal.locked"]
    )

    right = await client.post(
        f"/r/{token}", data={**wrong, "day": "17", "month": "5", "year": "1980"}
    )
    assert right.status == 403 and "Too many attempts" in await right.text()
    assert (await client.get("/portal/report", allow_redirects=False)).status == 403


@pytest.mark.parametrize(
    ("status", "says"),
    [
        ("superseded", "A newer report replaced this one"),
        ("withdrawn", "This report was withdrawn"),
    ],
)
async def test_a_replaced_or_withdrawn_report_link_says_so_and_opens_nothing(
    client: TestClient[Any, Any], resources: Resources, status: str, says: str
) -> None:
    report_id, token = await notified_report(resources)
    await resources.db.reports.update_one({"_id": report_id}, {"$set": {"status": status}})
    response = await client.get(f"/r/{token}")
    assert response.status == 410
    page = await response.text()
    assert says in page and resources.settings.lab_phone in page
    assert (await client.get("/portal/report.pdf", allow_redirects=False)).status == 403


async def test_the_reminders_link_opens_the_same_report_as_the_first_one(
    client: TestClient[Any, Any], resources: Resources
) -> None:
    report_id, first = await notified_report(resources)
    reminder = new_token()
    await resources.db.reports.update_one(
        {"_id": report_id}, {"$set": {"access.reminder_token_hash": token_hash(reminder)}}
    )
    for token in (first, reminder):
        assert (await client.get(f"/r/{token}")).status == 200
    status, page = await submit_date(client, reminder, date_of_birth=DATE_OF_BIRTH)
    assert status == 200 and "Your results" in page
