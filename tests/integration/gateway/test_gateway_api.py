"""The admin JSON API against real RabbitMQ and the MongoDB-protocol server: bearer tokens,
the generated OpenAPI document, batches, finding and reading reports, release and withdraw."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from contracts.v1 import utcnow
from devtools.demo import demo_sheet
from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.api import PREFIX
from services.gateway.api_routes import OPERATIONS
from services.infra.database import Database
from services.infra.service import Resources
from tests.support import PASSWORD, drain, report_document


@pytest.fixture
async def api(client: TestClient[Any, Any], db: Database) -> TestClient[Any, Any]:
    """The client with a bearer token of user `admin` on every request."""
    await create_user(db, "admin", PASSWORD)
    _, token = await ApiTokens(db).create("admin", "tests")
    client.session.headers["Authorization"] = f"Bearer {token}"
    return client


async def waiting_report(db: Database, status: str, **fields: Any) -> dict[str, Any]:
    report = report_document(status=status, pdf_file_id="0" * 24, **fields)
    await db.reports.insert_one(report)
    return report


async def test_the_api_wants_a_valid_token_and_answers_json_without_one(
    client: TestClient[Any, Any], db: Database
) -> None:
    response = await client.get(f"{PREFIX}/reports")
    assert response.status == 401
    assert (await response.json())["error"] == "unauthorized"
    await create_user(db, "admin", PASSWORD)
    tokens = ApiTokens(db)
    token_id, token = await tokens.create("admin")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get(f"{PREFIX}/reports", headers=headers)).status == 200
    stored = await db.api_tokens.find_one({"_id": token_id})
    assert stored is not None and token not in str(stored)
    assert await tokens.revoke(token_id)
    revoked = await client.get(f"{PREFIX}/reports", headers=headers)
    assert revoked.status == 401 and (await revoked.json())["error"] == "unauthorized"


async def test_the_openapi_document_describes_every_operation_from_the_models(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get(f"{PREFIX}/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    for operation in OPERATIONS:
        spec = document["paths"][PREFIX + operation.path][operation.method.lower()]
        assert spec["operationId"] == operation.handler.rsplit(".", 1)[-1]
    schemas = document["components"]["schemas"]
    assert {"ReportView", "ReleaseRules", "ErrorBody", "BatchView"} <= set(schemas)
    refs = {
        value.split("/")[-1]
        for value in _walk(document)
        if isinstance(value, str) and value.startswith("#/components/schemas/")
    }
    assert refs <= set(schemas), "every $ref resolves"


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        for value in node.values():
            yield value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


async def test_a_sheet_posted_to_the_api_becomes_a_batch_it_can_read_back(
    api: TestClient[Any, Any], amqp_url: str
) -> None:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(demo_sheet(2)), filename="api.xlsx")
    response = await api.post(f"{PREFIX}/batches", data=form)
    assert response.status == 202
    batch_id = (await response.json())["batch_id"]
    [command] = await drain(amqp_url, "ingest.batch")
    assert command["batch_id"] == batch_id
    batch = await (await api.get(f"{PREFIX}/batches/{batch_id}")).json()
    assert (batch["id"], batch["filename"], batch["status"]) == (batch_id, "api.xlsx", "received")
    assert batch["uploaded_by"] == "admin"
    missing = await api.get(f"{PREFIX}/batches/nope")
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"


async def test_a_file_that_is_no_sheet_is_refused_with_the_reason(
    api: TestClient[Any, Any], db: Database
) -> None:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(b"%PDF-1.7"), filename="report.pdf")
    response = await api.post(f"{PREFIX}/batches", data=form)
    assert response.status == 400
    assert "Only spreadsheets (.xlsx, .xlsm, .xls, .ods, .csv)" in (await response.json())["detail"]
    assert await db.batches.count_documents({}) == 0


async def test_reports_are_found_by_patient_phone_name_and_status(
    api: TestClient[Any, Any], db: Database
) -> None:
    ada = report_document(status="notified", patient={"patient_id": "P-7", "name": "Ada Okafor"})
    ben = report_document(
        status="held",
        patient={"patient_id": "P-8", "name": "Ben Lindqvist", "phone": "+447700900456"},
    )
    await db.reports.insert_many([ada, ben])

    async def ids(query: str) -> list[str]:
        body = await (await api.get(f"{PREFIX}/reports?{query}")).json()
        return [item["id"] for item in body["items"]]

    assert await ids("patient_id=P-7") == [ada["_id"]]
    assert await ids("phone=%2B44%207700%20900456") == [ben["_id"]]
    assert await ids("q=okaf") == [ada["_id"]]
    assert await ids("status=held") == [ben["_id"]]
    assert sorted(await ids("")) == sorted([ada["_id"], ben["_id"]])
    item = (await (await api.get(f"{PREFIX}/reports?patient_id=P-7")).json())["items"][0]
    assert (item["patient_id"], item["version"], item["status"]) == ("P-7", 1, "notified")


async def test_a_report_reads_with_its_versions_timeline_and_sms(
    api: TestClient[Any, Any], db: Database
) -> None:
    hold = {"action": "review", "until": None, "reason": "critical", "rule": None, "at": utcnow()}
    report = await waiting_report(db, "held", hold=hold)
    response = await api.get(f"{PREFIX}/reports/{report['_id']}")
    assert response.status == 200
    view = await response.json()
    assert (view["id"], view["version"], view["status"]) == (report["_id"], 1, "held")
    assert [v["id"] for v in view["versions"]] == [report["_id"]]
    # Reading it through the API is itself on the record.
    assert [(t["what"], t["by"]) for t in view["timeline"]] == [
        ("source", ""),
        ("held", ""),
        ("api.report_read", "admin:admin"),
    ]
    assert view["notifications"] == []
    assert (view["hold"]["action"], view["hold"]["reason"]) == ("review", "critical")
    assert "access" not in view and "token_hash" not in str(view)
    assert (await api.get(f"{PREFIX}/reports/nope")).status == 404


async def test_releasing_a_held_report_sends_it_on_and_a_second_release_is_a_conflict(
    api: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    report = await waiting_report(db, "held")
    url = f"{PREFIX}/reports/{report['_id']}/release"
    response = await api.post(url, json={"reason": "checked with the GP"})
    assert response.status == 200
    assert await response.json() == {"id": report["_id"], "version": 1, "status": "released"}
    [command] = await drain(amqp_url, "notify.patient")
    assert command["report_id"] == report["_id"]
    again = await api.post(url, json={"reason": "twice"})
    assert again.status == 409
    assert "this one is released" in (await again.json())["detail"]
    audit = await db.audit.find_one({"action": "report.released"})
    assert audit is not None and audit["actor"] == "admin:admin"
    assert audit["detail"]["reason"] == "checked with the GP"


async def test_an_incomplete_report_is_released_only_with_a_reason(
    api: TestClient[Any, Any], db: Database
) -> None:
    report = await waiting_report(
        db, "needs_attention", rejected_rows=[{"row": 3, "reason": "Value is empty"}]
    )
    url = f"{PREFIX}/reports/{report['_id']}/release"
    refused = await api.post(url, json={})
    assert refused.status == 400
    assert "say why it may go out as it is" in (await refused.json())["detail"]
    assert (await db.reports.find_one({"_id": report["_id"]}))["status"] == "needs_attention"  # type: ignore[index]
    assert (await api.post(url, json={"reason": "row 3 was a duplicate"})).status == 200


async def test_a_body_that_is_not_the_contract_is_refused_naming_the_field(
    api: TestClient[Any, Any], db: Database
) -> None:
    report = await waiting_report(db, "held")
    response = await api.post(
        f"{PREFIX}/reports/{report['_id']}/release", json={"reason": 5, "colour": "red"}
    )
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid"
    assert {d["field"] for d in body["detail"]} == {"reason", "colour"}


async def test_a_withdrawn_report_is_never_sent_and_its_link_says_so(
    api: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    report = await waiting_report(db, "notified")
    url = f"{PREFIX}/reports/{report['_id']}/withdraw"
    assert (await api.post(url, json={})).status == 400
    response = await api.post(url, json={"reason": "wrong patient"})
    assert response.status == 200 and (await response.json())["status"] == "withdrawn"
    stored = await db.reports.find_one({"_id": report["_id"]})
    assert stored is not None and stored["withdrawal"]["reason"] == "wrong patient"
    assert (await api.post(url, json={"reason": "again"})).status == 409
    release = await api.post(f"{PREFIX}/reports/{report['_id']}/release", json={"reason": "x"})
    assert release.status == 409
    assert await drain(amqp_url, "notify.patient") == []


async def test_many_reports_are_released_at_once_and_each_refusal_is_named(
    api: TestClient[Any, Any], db: Database
) -> None:
    held = [await waiting_report(db, "held") for _ in range(3)]
    done = await waiting_report(db, "delivered")
    ids = [r["_id"] for r in held] + [done["_id"], "nope"]
    response = await api.post(f"{PREFIX}/reports/release", json={"ids": ids, "reason": ""})
    assert response.status == 200
    items = {i["id"]: i for i in (await response.json())["items"]}
    assert [items[r["_id"]]["released"] for r in held] == [True, True, True]
    assert not items[done["_id"]]["released"] and "delivered" in items[done["_id"]]["detail"]
    assert items["nope"]["detail"] == "There is no report nope."


async def test_release_rules_are_replaced_whole_and_nonsense_is_refused(
    api: TestClient[Any, Any], db: Database, resources: Resources
) -> None:
    url = f"{PREFIX}/release-rules"
    assert await (await api.get(url)).json() == {"rules": []}
    bad = await api.put(url, json={"rules": [{"test": "HIV", "action": "hold"}]})
    assert bad.status == 400
    assert "a hold needs hours of at least 1" in str(await bad.json())
    rules = {"rules": [{"test": "HIV 1/2 Ab", "action": "review", "note": "counselling"}]}
    saved = await api.put(url, json=rules)
    assert saved.status == 200
    got = await (await api.get(url)).json()
    assert got["rules"][0]["test"] == "HIV 1/2 Ab" and got["rules"][0]["action"] == "review"
    stored = await db.release_rules.find_one({"_id": resources.settings.lab_id})
    assert stored is not None and stored["updated_by"] == "admin"


async def test_a_session_may_use_the_api_but_changes_need_its_csrf_header(
    admin: TestClient[Any, Any], db: Database
) -> None:
    report = await waiting_report(db, "held", updated_at=utcnow() - timedelta(minutes=1))
    assert (await admin.get(f"{PREFIX}/reports/{report['_id']}")).status == 200
    url = f"{PREFIX}/reports/{report['_id']}/release"
    refused = await admin.post(url, json={"reason": "ok"})
    assert refused.status == 403 and (await refused.json())["error"] == "csrf"
    session = await db.sessions.find_one({"username": "admin"})
    assert session is not None
    response = await admin.post(
        url, json={"reason": "ok"}, headers={"X-CSRF-Token": session["csrf_token"]}
    )
    assert response.status == 200


async def sms_record(db: Database, report_id: str, status: str) -> None:
    await db.notifications.insert_one(
        {
            "_id": uuid.uuid4().hex,
            "report_id": report_id,
            "version": 1,
            "purpose": "result_ready",
            "to": "+447700900123",
            "provider": "outbox",
            "status": status,
            "attempts": 1,
            "provider_message_id": "m1",
            "error": None,
            "created_at": utcnow(),
        }
    )


@pytest.mark.parametrize(
    ("stored", "back_to", "queue"),
    [
        ({}, "received", "render.report"),
        ({"docx_file_id": "d" * 24}, "rendered", "convert.report"),
        ({"docx_file_id": "d" * 24, "pdf_file_id": "p" * 24}, "converted", "notify.patient"),
    ],
)
async def test_a_failed_report_is_retried_from_the_stage_that_failed(
    api: TestClient[Any, Any],
    db: Database,
    amqp_url: str,
    stored: dict[str, Any],
    back_to: str,
    queue: str,
) -> None:
    report = report_document(status="failed", failure_reason="LibreOffice hung", **stored)
    await db.reports.insert_one(report)
    response = await api.post(f"{PREFIX}/reports/{report['_id']}/retry")
    assert response.status == 200 and (await response.json())["status"] == back_to
    [command] = await drain(amqp_url, queue)
    assert command["report_id"] == report["_id"]
    retried = await db.reports.find_one({"_id": report["_id"]})
    assert retried is not None and retried["failure_reason"] == ""
    assert retried["retry"]["by"] == "admin"
    again = await api.post(f"{PREFIX}/reports/{report['_id']}/retry")
    assert again.status == 409 and "Only a failed or stuck report" in (await again.json())["detail"]


async def test_a_report_whose_sms_may_have_gone_is_not_retried_but_can_be_resent(
    api: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    report = await waiting_report(db, "failed", failure_reason="SMS not delivered: 30003")
    await sms_record(db, report["_id"], "undelivered")
    refused = await api.post(f"{PREFIX}/reports/{report['_id']}/retry")
    assert refused.status == 409 and "use Resend" in (await refused.json())["detail"]

    body = {"request_id": "req-0001-abcd", "phone": "07400 123 457"}
    response = await api.post(f"{PREFIX}/reports/{report['_id']}/resend", json=body)
    assert response.status == 202
    again = await api.post(f"{PREFIX}/reports/{report['_id']}/resend", json=body)
    assert again.status == 202
    commands = await drain(amqp_url, "notify.patient")
    assert [c["request_id"] for c in commands] == ["req-0001-abcd"] * 2  # notify texts once
    stored = await db.reports.find_one({"_id": report["_id"]})
    assert stored is not None and stored["patient"]["phone"] == "+447400123457"
    audit = await db.audit.find({"action": "report.resend"}).to_list()
    assert len(audit) == 2 and audit[0]["detail"]["phone_changed"] is True


async def test_a_resend_to_a_number_that_is_no_mobile_is_refused_with_the_reason(
    api: TestClient[Any, Any], db: Database, amqp_url: str
) -> None:
    report = await waiting_report(db, "notified")
    await sms_record(db, report["_id"], "sent")
    response = await api.post(
        f"{PREFIX}/reports/{report['_id']}/resend", json={"phone": "020 7946 0000"}
    )
    assert response.status == 400
    assert "is not a mobile number" in (await response.json())["detail"]
    assert await drain(amqp_url, "notify.patient") == []


async def test_a_report_never_texted_cannot_be_texted_again(
    api: TestClient[Any, Any], db: Database
) -> None:
    report = await waiting_report(db, "held")
    response = await api.post(f"{PREFIX}/reports/{report['_id']}/reissue-link", json={})
    assert response.status == 409
    assert "Only a report already texted" in (await response.json())["detail"]


async def test_cancelling_a_batch_withdraws_what_was_not_sent_and_lists_what_was(
    api: TestClient[Any, Any], db: Database
) -> None:
    batch_id = uuid.uuid4().hex
    await db.batches.insert_one(
        {"_id": batch_id, "lab_id": "demo-lab", "filename": "x.xlsx", "status": "ingested"}
    )
    statuses = ["received", "held", "notified", "failed"]
    reports = [
        report_document(status=s, batch_id=batch_id, report_id=s * 3, patient={"patient_id": s})
        for s in statuses
    ]
    await db.reports.insert_many(reports)
    url = f"{PREFIX}/batches/{batch_id}/cancel"
    assert (await api.post(url, json={})).status == 400
    response = await api.post(url, json={"reason": "wrong sheet uploaded"})
    assert response.status == 200
    outcome = await response.json()
    assert sorted(outcome["done"]) == [
        "failedfailedfailed",
        "heldheldheld",
        "receivedreceivedreceived",
    ]
    assert outcome["left"] == [
        {"id": "notifiednotifiednotified", "detail": "already sent (notified)"}
    ]
    batch = await db.batches.find_one({"_id": batch_id})
    assert batch is not None and batch["status"] == "cancelled"
    assert batch["cancellation"]["reason"] == "wrong sheet uploaded"
    assert (await api.post(url, json={"reason": "again"})).status == 409
    assert (await api.post(f"{PREFIX}/batches/{batch_id}/explode", json={})).status == 404


async def test_a_batchs_held_reports_are_released_together(
    api: TestClient[Any, Any], db: Database
) -> None:
    batch_id = uuid.uuid4().hex
    await db.batches.insert_one(
        {"_id": batch_id, "lab_id": "demo-lab", "filename": "x.xlsx", "status": "ingested"}
    )
    held = report_document(status="held", batch_id=batch_id)
    gap = report_document(
        status="needs_attention",
        batch_id=batch_id,
        report_id="gap" * 4,
        patient={"patient_id": "P-GAP"},
        rejected_rows=[{"row": 3, "reason": "x"}],
    )
    await db.reports.insert_many([held, gap])
    url = f"{PREFIX}/batches/{batch_id}/release-held"
    first = await (await api.post(url, json={})).json()
    assert first == {"done": [held["_id"]], "left": []}  # incomplete ones need a reason
    second = await (await api.post(url, json={"reason": "checked by phone"})).json()
    assert second == {"done": [gap["_id"]], "left": []}


async def test_batches_are_listed_newest_first_and_filtered(
    api: TestClient[Any, Any], db: Database
) -> None:
    now = utcnow()
    for n, (name, status) in enumerate(
        [("monday.xlsx", "ingested"), ("tuesday.xlsx", "failed"), ("wed.csv", "ingested")]
    ):
        await db.batches.insert_one(
            {
                "_id": f"batch-{n}",
                "lab_id": "demo-lab",
                "filename": name,
                "status": status,
                "uploaded_by": "ann" if n else "bob",
                "uploaded_at": now + timedelta(minutes=n),
            }
        )

    async def ids(query: str) -> list[str]:
        body = await (await api.get(f"{PREFIX}/batches?{query}")).json()
        return [item["id"] for item in body["items"]]

    assert await ids("") == ["batch-2", "batch-1", "batch-0"]
    assert await ids("status=ingested") == ["batch-2", "batch-0"]
    assert await ids("q=XLSX") == ["batch-1", "batch-0"]
    assert await ids("uploaded_by=bob") == ["batch-0"]
    assert (await api.get(f"{PREFIX}/batches?page=two")).status == 400


async def test_reports_are_found_by_sample_date_range(
    api: TestClient[Any, Any], db: Database
) -> None:
    dates = ["2026-03-01", "2026-03-05", "2026-03-09"]
    reports = [report_document(sample_date=d) for d in dates]
    await db.reports.insert_many(reports)
    body = await (
        await api.get(f"{PREFIX}/reports?sampled_from=2026-03-02&sampled_to=2026-03-09")
    ).json()
    assert sorted(i["sample_date"] for i in body["items"]) == ["2026-03-05", "2026-03-09"]
    nonsense = await (await api.get(f"{PREFIX}/reports?sampled_from=yesterday")).json()
    assert len(nonsense["items"]) == 3  # a date that is no date filters nothing
