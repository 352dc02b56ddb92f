"""Gateway admin pages against real RabbitMQ and the MongoDB-protocol server."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from contracts.v1 import ReportStatus, ReportStatusChanged, utcnow
from devtools.demo import demo_sheet
from services.gateway.accounts_store import UserError, create_user
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from tests.support import PASSWORD, csrf_from, drain, log_in, report_document


async def upload(
    client: TestClient[Any, Any], data: bytes, filename: str
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("csrf_token", await csrf_from(client, "/upload"))
    form.add_field("file", io.BytesIO(data), filename=filename)
    form.add_field("preview", "false")  # straight to ingest (the page's default previews)
    return await client.post("/upload", data=form)


async def test_admin_pages_send_a_visitor_without_session_to_login(
    client: TestClient[Any, Any],
) -> None:
    for path in ("/", "/upload", "/reports", "/outbox", "/batches/x", "/batches/x/counts"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/login?next=")
    assert (await client.post("/upload", data={"csrf_token": "x"})).status == 403


async def test_wrong_password_is_rejected_and_the_right_one_opens_the_dashboard(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "admin", PASSWORD)
    wrong = await log_in(client, password="not the password at all")
    assert wrong.status == 401
    assert "Wrong username or password" in await wrong.text()
    assert (await client.get("/", allow_redirects=False)).status == 303

    right = await log_in(client)
    assert right.status == 200
    assert "Batches" in await right.text()
    session_cookie = right.history[0].cookies["rf_session"]
    assert session_cookie["httponly"] and session_cookie["samesite"] == "Lax"
    stored = await db.sessions.find_one({"username": "admin"})
    assert stored and session_cookie.value not in json.dumps(stored, default=str)


async def test_login_is_locked_after_ten_failures_even_with_the_right_password(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "admin", PASSWORD)
    for _ in range(10):
        assert (await log_in(client, password="wrong password!!")).status == 401
    locked = await log_in(client)
    assert locked.status == 429
    assert "Too many failed attempts" in await locked.text()


async def test_short_password_and_duplicate_user_are_refused(db: Database) -> None:
    with pytest.raises(UserError, match="at least 12"):
        await create_user(db, "admin", "short")
    await create_user(db, "admin", PASSWORD)
    with pytest.raises(UserError, match="already exists"):
        await create_user(db, "admin", PASSWORD)
    user = await db.users.find_one({"username": "admin"})
    assert user and user["password_hash"].startswith("$argon2id$")


async def test_post_without_csrf_token_is_refused(
    admin: TestClient[Any, Any], db: Database
) -> None:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(demo_sheet(1)), filename="results.xlsx")
    response = await admin.post("/upload", data=form)
    assert response.status == 403
    assert await db.batches.count_documents({}) == 0
    assert (await admin.post("/logout")).status == 403
    assert (await admin.get("/", allow_redirects=False)).status == 200


async def test_upload_stores_the_sheet_asks_ingest_and_shows_the_batch(
    admin: TestClient[Any, Any], db: Database, resources: Resources, amqp_url: str
) -> None:
    sheet = demo_sheet(2)
    response = await upload(admin, sheet, "monday.xlsx")
    assert response.status == 200
    assert response.url.path.startswith("/batches/")
    page = await response.text()
    assert "monday.xlsx" in page and "admin" in page

    batch = await db.batches.find_one({})
    assert batch is not None
    assert response.url.path == f"/batches/{batch['_id']}"
    assert (batch["status"], batch["uploaded_by"], batch["lab_id"]) == (
        "received",
        "admin",
        resources.settings.lab_id,
    )
    stored = await resources.files.get(batch["file_id"])
    assert stored.data == sheet and stored.metadata["kind"] == "upload"
    [message] = await drain(amqp_url, "ingest.batch")
    assert message["batch_id"] == batch["_id"]
    assert message["file_id"] == batch["file_id"]
    assert message["correlation_id"] == batch["correlation_id"]

    dashboard = await (await admin.get("/")).text()
    assert "monday.xlsx" in dashboard


async def test_csv_upload_is_stored_as_csv_and_handed_to_ingest(
    admin: TestClient[Any, Any], db: Database, resources: Resources, amqp_url: str
) -> None:
    sheet = b"patient_id,name,date_of_birth\nP1,Ada Example,1980-05-17\n"
    response = await upload(admin, sheet, "tuesday.csv")
    assert response.status == 200
    batch = await db.batches.find_one({})
    assert batch is not None and batch["filename"] == "tuesday.csv"
    assert response.url.path == f"/batches/{batch['_id']}"
    stored = await resources.files.get(batch["file_id"])
    assert stored.data == sheet
    assert stored.metadata == {"kind": "upload", "content_type": "text/csv"}
    [message] = await drain(amqp_url, "ingest.batch")
    assert (message["batch_id"], message["file_id"]) == (batch["_id"], batch["file_id"])


async def test_upload_page_offers_every_spreadsheet_kind_ingest_reads(
    admin: TestClient[Any, Any],
) -> None:
    page = await (await admin.get("/upload")).text()
    assert 'accept=".xlsx,.xlsm,.xls,.ods,.csv,text/csv"' in page


async def test_upload_of_something_that_is_no_spreadsheet_is_refused(
    admin: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    response = await upload(admin, b"name\tdob\nA\tB\n", "results.txt")
    assert response.status == 400
    assert "Only spreadsheets (.xlsx, .xlsm, .xls, .ods, .csv)" in await response.text()
    disguised = await upload(admin, b"not a zip", "results.xlsx")
    assert disguised.status == 400
    binary = await upload(admin, b"PK\x03\x04\x00\x00", "results.csv")
    assert binary.status == 400
    assert await db.batches.count_documents({}) == 0
    assert await drain(amqp_url, "ingest.batch") == []


async def insert_batch_with_reports(db: Database, statuses: list[str]) -> str:
    batch_id = uuid.uuid4().hex
    await db.batches.insert_one(
        {
            "_id": batch_id,
            "lab_id": "demo-lab",
            "filename": "results.xlsx",
            "file_id": "x",
            "uploaded_by": "admin",
            "status": "ingested",
            "rows_total": 7,
            "rows_accepted": 6,
            "rejected_rows": [{"row": 5, "reason": "date of birth missing"}],
            "reports_created": len(statuses),
            "duplicates": 0,
            "correlation_id": batch_id,
        }
    )
    for n, status in enumerate(statuses):
        await db.reports.insert_one(
            report_document(
                report_id=f"{batch_id}-{n}",
                batch_id=batch_id,
                status=status,
                patient={"patient_id": f"P{n:03}", "name": f"Patient {n}"},
                failure_reason="template field missing" if status == "failed" else "",
            )
        )
    return batch_id


async def test_batch_page_shows_rejected_rows_counts_and_failed_reports(
    admin: TestClient[Any, Any], db: Database
) -> None:
    batch_id = await insert_batch_with_reports(db, ["received", "delivered", "failed"])
    page = await (await admin.get(f"/batches/{batch_id}")).text()
    assert "date of birth missing" in page
    assert "template field missing" in page and "P002" in page
    counts = await (await admin.get(f"/batches/{batch_id}/counts")).json()
    assert counts["rows_total"] == 7 and counts["rows_rejected"] == 1
    assert counts["statuses"]["received"] == 1
    assert counts["statuses"]["delivered"] == 1
    assert counts["statuses"]["failed"] == 1

    listing = await (await admin.get(f"/reports?batch={batch_id}&status=failed")).text()
    assert "P002" in listing and "P000" not in listing


async def read_event(response: aiohttp.ClientResponse) -> dict[str, Any]:
    data = ""
    while True:
        line = (await response.content.readline()).decode()
        if line.startswith("data: "):
            data = line[len("data: ") :]
        elif line == "\n" and data:
            return dict(json.loads(data))


async def test_live_stream_sends_new_counts_when_a_report_moves_on(
    admin: TestClient[Any, Any], db: Database, resources: Resources
) -> None:
    batch_id = await insert_batch_with_reports(db, ["received", "received"])
    async with admin.get(f"/batches/{batch_id}/events") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        first = await read_event(stream)
        assert first["statuses"]["received"] == 2
        await db.reports.update_one({"_id": f"{batch_id}-0"}, {"$set": {"status": "rendered"}})
        await publish(
            resources.broker,
            ReportStatusChanged(
                correlation_id=batch_id,
                report_id=f"{batch_id}-0",
                batch_id=batch_id,
                lab_id="demo-lab",
                status=ReportStatus.RENDERED,
                previous_status=ReportStatus.RECEIVED,
            ),
        )
        while (event := await read_event(stream))["statuses"]["rendered"] != 1:
            pass
        assert event["statuses"]["received"] == 1


async def test_outbox_shows_sent_sms_with_a_link_to_open(
    admin: TestClient[Any, Any], db: Database
) -> None:
    await db.outbox.insert_one(
        {
            "_id": "m1",
            "to": "+447700900123",
            "body": "Your results are ready: http://127.0.0.1:8080/r/abcdefghijklmnop1234",
            "provider_message_id": "m1",
        }
    )
    page = await (await admin.get("/outbox")).text()
    assert "+447700900123" in page
    assert 'href="http://127.0.0.1:8080/r/abcdefghijklmnop1234"' in page


async def test_logout_ends_the_session(admin: TestClient[Any, Any], db: Database) -> None:
    token = await csrf_from(admin, "/")
    response = await admin.post("/logout", data={"csrf_token": token})
    assert response.url.path == "/login"
    assert (await admin.get("/", allow_redirects=False)).status == 303
    assert await db.sessions.count_documents({}) == 0


async def test_a_second_login_page_load_does_not_void_the_first_form(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "admin", PASSWORD)
    first = await csrf_from(client, "/login")
    await client.get("/favicon.ico")  # browsers ask for it; it must not rotate the token
    await csrf_from(client, "/login?next=/reports")  # a second tab
    response = await client.post(
        "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": first}
    )
    assert response.status == 200 and response.url.path == "/login/mfa/setup"


async def test_parallel_wrong_passwords_are_checked_at_most_ten_times_before_the_lock(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "admin", PASSWORD)
    token = await csrf_from(client, "/login")
    wrong = {"username": "admin", "password": "wrong password!!", "csrf_token": token}

    async def guess() -> int:
        response = await client.post("/login", data=wrong)
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(guess() for _ in range(30)))
    assert statuses.count(401) == 10 and statuses.count(429) == 20
    assert (await log_in(client)).status == 429


async def test_a_login_lock_ends_after_fifteen_minutes(
    client: TestClient[Any, Any], db: Database
) -> None:
    await create_user(db, "admin", PASSWORD)
    for _ in range(10):
        assert (await log_in(client, password="wrong password!!")).status == 401
    locked = await log_in(client)
    assert locked.status == 429 and 0 < int(locked.headers["Retry-After"]) <= 15 * 60
    key = {"_id": "user_at_address:admin@127.0.0.1"}
    record = await db.login_throttle.find_one(key)
    assert record and record["failures"] == 0
    await db.login_throttle.update_one(
        key, {"$set": {"blocked_until": record["blocked_until"] - timedelta(minutes=15)}}
    )
    assert (await log_in(client)).status == 200
    assert await db.login_throttle.count_documents(key) == 0


# --- one report in detail --------------------------------------------------------------------


async def insert_failed_sheet_report(db: Database) -> tuple[str, str]:
    """A sheet report that went received → rendered → failed, with results. Returns
    (batch id, report id)."""
    batch_id = await insert_batch_with_reports(db, [])
    report_id = uuid.uuid4().hex
    start = utcnow() - timedelta(minutes=5)
    await db.reports.insert_one(
        report_document(
            report_id=report_id,
            batch_id=batch_id,
            status="failed",
            patient={"patient_id": "P-77", "name": "Ada Example", "date_of_birth": "1980-05-17"},
            results=[
                {
                    "test": "Potassium",
                    "value": "6.1",
                    "unit": "mmol/L",
                    "reference_range": "3.5-5.1",
                    "flag": "H",
                }
            ],
            history=[
                {"status": "received", "at": start, "reason": "step one"},
                {"status": "rendered", "at": start + timedelta(seconds=5), "reason": "step two"},
                {"status": "failed", "at": start + timedelta(seconds=9), "reason": "step three"},
            ],
            failure_reason="PDF conversion timed out",
            access={
                "token_hash": "f" * 64,
                "expires_at": utcnow() + timedelta(days=1),
                "failed_attempts": 0,
                "locked": False,
            },
        )
    )
    return batch_id, report_id


async def test_report_page_needs_an_admin_login_and_records_nothing_without_one(
    client: TestClient[Any, Any], db: Database
) -> None:
    _, report_id = await insert_failed_sheet_report(db)
    response = await client.get(f"/reports/{report_id}", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"/login?next=/reports/{report_id}"
    assert await db.audit.count_documents({}) == 0


async def test_report_page_shows_patient_results_source_and_the_timeline_oldest_first(
    admin: TestClient[Any, Any], db: Database
) -> None:
    batch_id, report_id = await insert_failed_sheet_report(db)
    response = await admin.get(f"/reports/{report_id}")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = await response.text()
    for shown in ("P-77", "Ada Example", "1980-05-17", "+447700900123", "2026-03-02"):
        assert shown in page
    for shown in ("Potassium", "6.1", "mmol/L", "3.5-5.1", "H (high)"):
        assert shown in page
    assert f'href="/batches/{batch_id}">results.xlsx</a>' in page  # sheet rows of that batch
    steps = [page.index(f"step {n}") for n in ("one", "two", "three")]
    assert steps == sorted(steps)
    assert "f" * 64 not in page  # the link token's hash is never shown


async def test_report_page_of_a_failed_report_gives_the_failure_reason(
    admin: TestClient[Any, Any], db: Database
) -> None:
    _, report_id = await insert_failed_sheet_report(db)
    page = await (await admin.get(f"/reports/{report_id}")).text()
    assert 'role="alert"' in page and "PDF conversion timed out" in page


async def test_report_page_of_an_lis_report_gives_its_message_and_accession(
    admin: TestClient[Any, Any], db: Database
) -> None:
    await db.reports.insert_one(
        report_document(
            report_id="lis-report-1",
            source={"kind": "lis", "message_id": "MSG-0042", "accession": "ACC-9001"},
        )
    )
    page = await (await admin.get("/reports/lis-report-1")).text()
    assert "MSG-0042" in page and "ACC-9001" in page
    assert "Open PDF" not in page  # no PDF yet, no link to one


async def test_report_page_shows_the_sms_notification_and_nothing_token_like(
    admin: TestClient[Any, Any], db: Database
) -> None:
    _, report_id = await insert_failed_sheet_report(db)
    token = "tokenThatMustNeverShow-" + uuid.uuid4().hex
    await db.notifications.insert_one(
        {
            "_id": uuid.uuid4().hex,
            "report_id": report_id,
            "version": 1,
            "purpose": "result_ready",
            "to": "+447700900123",
            "provider": "twilio",
            "status": "undelivered",
            "refused": False,
            "attempts": 1,
            "provider_message_id": "SM0123456789abcdef",
            "provider_status": "queued",
            "error": "undelivered 30003",
            "created_at": utcnow(),
            "sent_at": utcnow(),
            # Not in the data model; a page reading whole records would show it.
            "body": f"Your results: https://lab.example/r/{token}",
        }
    )
    page = await (await admin.get(f"/reports/{report_id}")).text()
    assert "SM0123456789abcdef" in page and "undelivered 30003" in page
    assert 'class="badge s-undelivered">undelivered<' in page
    assert token not in page


async def test_report_page_shows_the_portal_activity_of_that_report_only(
    admin: TestClient[Any, Any], db: Database
) -> None:
    _, report_id = await insert_failed_sheet_report(db)
    start = utcnow() - timedelta(minutes=1)
    for n, action in enumerate(["portal.check_failed", "portal.opened", "report.viewed"]):
        await db.audit.insert_one(
            {
                "at": start + timedelta(seconds=n),
                "actor": "patient",
                "action": action,
                "report_id": report_id,
                "detail": {"ip": "203.0.113.7", "user_agent": "PatientPhone/1.0"},
            }
        )
    await db.audit.insert_one(
        {
            "at": start,
            "actor": "patient",
            "action": "report.downloaded",
            "report_id": "another-report",
            "detail": {"ip": "198.51.100.9", "user_agent": "Other/1.0"},
        }
    )
    page = await (await admin.get(f"/reports/{report_id}")).text()
    portal = page[page.index("Portal activity") : page.index("Staff access")]
    actions = [portal.index(a) for a in ("portal.check_failed", "portal.opened", "report.viewed")]
    assert actions == sorted(actions)
    assert "203.0.113.7" in portal and "PatientPhone/1.0" in portal
    assert "report.downloaded" not in page and "198.51.100.9" not in page


async def test_opening_a_report_page_is_audited_as_admin_report_opened(
    admin: TestClient[Any, Any], db: Database
) -> None:
    _, report_id = await insert_failed_sheet_report(db)
    assert (await admin.get(f"/reports/{report_id}")).status == 200
    [opened] = await db.audit.find({"report_id": report_id}).to_list()
    assert (opened["actor"], opened["action"]) == ("admin:admin", "admin.report_opened")
    assert set(opened["detail"]) == {"ip", "user_agent"}
    page = await (await admin.get(f"/reports/{report_id}")).text()
    staff = page[page.index("Staff access") :]
    assert staff.count("admin.report_opened") == 2  # the first opening and this one
    assert await db.audit.count_documents({"action": "report.viewed"}) == 0


async def test_an_unknown_report_id_gives_a_not_found_page(
    admin: TestClient[Any, Any], db: Database
) -> None:
    response = await admin.get("/reports/no-such-report")
    assert response.status == 404
    assert "Report not found" in await response.text()
    assert await db.audit.count_documents({"report_id": {"$ne": None}}) == 0


async def test_the_reports_list_and_the_batch_page_link_each_report_to_its_page(
    admin: TestClient[Any, Any], db: Database
) -> None:
    batch_id, report_id = await insert_failed_sheet_report(db)
    listing = await (await admin.get("/reports")).text()
    assert f'href="/reports/{report_id}"' in listing
    batch_page = await (await admin.get(f"/batches/{batch_id}")).text()
    assert f'href="/reports/{report_id}"' in batch_page
