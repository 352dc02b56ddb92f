"""Render against real RabbitMQ and the MongoDB-protocol server."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import aio_pika
from docx import Document

from contracts.v1 import RenderReport
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.template_rules import TemplateRule, TemplateRuleStore
from services.render.main import create_app
from tests.support import drain, eventually, report_document
from tests.template_files import lab_template

RESULTS = [
    {
        "test": "Haemoglobin",
        "value": "11.2",
        "unit": "g/dL",
        "reference_range": "12-15",
        "flag": "L",
    },
    {"test": "C-reactive protein", "value": "< 5.0", "unit": "mg/L", "reference_range": "< 5.0"},
    {
        "test": "Glucose",
        "value": "7.9",
        "unit": "mmol/L",
        "reference_range": "3.9-5.5",
        "flag": "H",
    },
]


def hostile_template() -> bytes:
    document = Document()
    document.add_paragraph("Dear {{ patient.name }}")
    document.add_paragraph("{{ lipsum.__globals__['os'].popen('id').read() }}")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


async def received_report(db: Database, template: str = "default") -> dict[str, Any]:
    """A report as ingest stores it (docs/data-model.md)."""
    document = report_document(
        patient={"patient_id": "P-1001", "name": "Amelia Okafor", "date_of_birth": "1980-03-03"},
        results=RESULTS,
        sample_date="2025-05-12",
        comments="Fasting sample.",
        template=template,
    )
    await db.reports.insert_one(document)
    return document


async def request_render(resources: Resources, report: dict[str, Any]) -> None:
    message = RenderReport(report_id=report["_id"], correlation_id=report["correlation_id"])
    await publish(resources.broker, message)


async def status_is(db: Database, report_id: str, *statuses: str) -> dict[str, Any] | None:
    return await db.reports.find_one({"_id": report_id, "status": {"$in": list(statuses)}})


def docx_text(data: bytes) -> str:
    document = Document(io.BytesIO(data))
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.extend(cell.text for cell in row.cells)
    return "\n".join(lines)


async def docx_files(db: Database, report_id: str) -> list[dict[str, Any]]:
    return await db["fs.files"].find({"metadata.report_id": report_id}).to_list()


async def queued(amqp_url: str, queue: str, count: int) -> bool:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return (declared.declaration_result.message_count or 0) >= count


async def test_received_report_is_rendered_stored_and_sent_to_convert(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("render")
    report = await received_report(db)
    async with create_app(resources):
        await request_render(resources, report)
        rendered = await eventually(lambda: status_is(db, report["_id"], "rendered", "failed"))
        assert rendered["status"] == "rendered", rendered.get("failure_reason")
        stored = await resources.files.get(rendered["docx_file_id"])

    assert stored.filename == f"{report['_id']}.docx"
    assert stored.metadata["kind"] == "docx"
    assert stored.metadata["report_id"] == report["_id"]
    assert stored.metadata["content_type"].endswith("wordprocessingml.document")
    text = docx_text(stored.data)
    assert "Amelia Okafor" in text
    assert "03 Mar 1980" in text
    for result in RESULTS:
        assert result["value"] in text
    assert "< 5.0" in text
    assert "Fasting sample." in text

    convert_requests = await drain(amqp_url, "convert.report")
    assert [(m["report_id"], m["correlation_id"]) for m in convert_requests] == [
        (report["_id"], report["correlation_id"])
    ]


async def test_redelivered_render_request_stores_no_second_docx(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("render")
    report = await received_report(db)
    async with create_app(resources):
        await request_render(resources, report)
        first = await eventually(lambda: status_is(db, report["_id"], "rendered"))
        await request_render(resources, report)
        # The second delivery re-sends ConvertReport (the first may have crashed before it).
        await eventually(lambda: queued(amqp_url, "convert.report", 2))

    again = await db.reports.find_one({"_id": report["_id"]})
    assert again is not None
    assert again["docx_file_id"] == first["docx_file_id"]
    assert [h["status"] for h in again["history"]] == ["received", "rendered"]
    assert len(await docx_files(db, report["_id"])) == 1


async def test_render_interrupted_after_storing_reuses_the_stored_docx(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    resources = make_resources("render")
    report = await received_report(db)
    # What a worker killed between storing the .docx and updating the report leaves behind.
    earlier = await resources.files.put(
        f"{report['_id']}.docx", b"PK earlier", {"kind": "docx", "report_id": report["_id"]}
    )
    async with create_app(resources):
        await request_render(resources, report)
        rendered = await eventually(lambda: status_is(db, report["_id"], "rendered"))
    assert rendered["docx_file_id"] == earlier
    assert len(await docx_files(db, report["_id"])) == 1


async def test_hostile_template_fails_the_report_and_dead_letters_the_message(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("render")
    report = await received_report(db, template="evil")
    async with create_app(resources, templates={"evil": hostile_template()}):
        await request_render(resources, report)
        failed = await eventually(lambda: status_is(db, report["_id"], "failed", "rendered"))
        dead = await eventually(lambda: drain(amqp_url, "render.report.dlq"))

    assert failed["status"] == "failed"
    assert "not allowed" in failed["failure_reason"]
    assert "evil" in failed["failure_reason"]
    assert [m["report_id"] for m in dead] == [report["_id"]]
    assert await docx_files(db, report["_id"]) == []
    assert await drain(amqp_url, "convert.report") == []


async def test_unknown_template_name_fails_the_report_with_its_name(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("render")
    report = await received_report(db, template="../../../etc/passwd")
    async with create_app(resources):
        await request_render(resources, report)
        failed = await eventually(lambda: status_is(db, report["_id"], "failed", "rendered"))
        dead = await eventually(lambda: drain(amqp_url, "render.report.dlq"))

    assert failed["status"] == "failed"
    assert failed["failure_reason"] == "unknown report template '../../../etc/passwd'"
    assert [m["report_id"] for m in dead] == [report["_id"]]


async def test_a_choice_rule_picks_the_template_by_a_result_s_test_and_is_recorded(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    resources = make_resources("render")
    rules = [TemplateRule(test="glucose", language="", template="diabetes")]
    await TemplateRuleStore(db).put(rules, by="admin:admin")
    report = await received_report(db)
    diabetes = lab_template(body="Diabetes clinic report")
    async with create_app(resources, templates={"diabetes": diabetes}):
        await request_render(resources, report)
        rendered = await eventually(lambda: status_is(db, report["_id"], "rendered", "failed"))
        assert rendered["status"] == "rendered", rendered.get("failure_reason")
        stored = await resources.files.get(rendered["docx_file_id"])
    assert rendered["template"] == "diabetes"
    assert "Diabetes clinic report" in docx_text(stored.data)
