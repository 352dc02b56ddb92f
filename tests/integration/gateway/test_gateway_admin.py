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

from contracts.v1 import ReportStatus, ReportStatusChanged
from services.demo import demo_sheet
from services.gateway.adapters import UserError, create_user
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from tests.support import csrf_from, drain, report_document

PASSWORD = "correct horse battery staple"


async def log_in(
    client: TestClient[Any, Any], username: str = "admin", password: str = PASSWORD
) -> aiohttp.ClientResponse:
    token = await csrf_from(client, "/login")
    return await client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


@pytest.fixture
async def admin(client: TestClient[Any, Any], db: Database) -> TestClient[Any, Any]:
    await create_user(db, "admin", PASSWORD)
    response = await log_in(client)
    assert response.status == 200 and response.url.path == "/"
    return client


async def upload(
    client: TestClient[Any, Any], data: bytes, filename: str
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("csrf_token", await csrf_from(client, "/upload"))
    form.add_field("file", io.BytesIO(data), filename=filename)
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


async def test_upload_page_offers_xlsx_and_csv(admin: TestClient[Any, Any]) -> None:
    page = await (await admin.get("/upload")).text()
    assert 'accept=".xlsx,.csv,' in page and "text/csv" in page


async def test_upload_of_something_that_is_neither_xlsx_nor_csv_is_refused(
    admin: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    response = await upload(admin, b"name\tdob\nA\tB\n", "results.txt")
    assert response.status == 400
    assert "Only Excel workbooks (.xlsx) and CSV files (.csv)" in await response.text()
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


async def test_health_and_metrics_report_the_system(
    client: TestClient[Any, Any], db: Database
) -> None:
    await insert_batch_with_reports(db, ["delivered", "delivered", "failed"])
    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "ok", "mongodb": True, "broker": True}
    metrics = await (await client.get("/metrics")).text()
    assert 'resultflow_reports{status="delivered"} 2' in metrics
    assert 'resultflow_reports{status="failed"} 1' in metrics
    assert 'resultflow_batches{status="ingested"} 1' in metrics


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
    assert response.status == 200 and response.url.path == "/"


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
    assert (await log_in(client)).status == 429
    record = await db.login_failures.find_one({"_id": "admin"})
    assert record and record["failures"] == 0
    await db.login_failures.update_one(
        {"_id": "admin"}, {"$set": {"locked_until": record["locked_until"] - timedelta(minutes=15)}}
    )
    assert (await log_in(client)).status == 200
    assert await db.login_failures.count_documents({}) == 0
