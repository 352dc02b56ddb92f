"""The convert service end to end: real RabbitMQ, real MongoDB protocol, real LibreOffice."""

from __future__ import annotations

import io
import json
import os
import signal
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
import docx
import pytest
from pypdf import PdfReader

from contracts.v1 import ConvertReport
from services.convert.logic import sha256_hex
from services.convert.main import create_app
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.files import FileStore
from services.infra.service import Resources
from services.infra.settings import Settings
from tests.support import eventually, office_processes, report_document

PATIENT_NAME = "Amelia Thornbury"
GLUCOSE = "5.4"


def make_docx(name: str, value: str) -> bytes:
    document = docx.Document()
    document.add_heading("Laboratory report", level=1)
    document.add_paragraph(f"Patient: {name}")
    document.add_paragraph(f"Glucose (fasting): {value} mmol/L")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


async def insert_rendered_report(db: Database, docx_bytes: bytes) -> dict[str, Any]:
    report_id = uuid.uuid4().hex
    docx_file_id = await FileStore(db).put(
        f"report-{report_id}.docx",
        docx_bytes,
        {"kind": "docx", "report_id": report_id, "content_type": "application/octet-stream"},
    )
    report = report_document(
        report_id=report_id,
        status="rendered",
        history=[],  # the tests look at the entries convert adds
        patient={"name": PATIENT_NAME},
        results=[{"test": "Glucose", "value": GLUCOSE, "unit": "mmol/L"}],
        sample_date="2026-11-20",
        docx_file_id=docx_file_id,
    )
    await db.reports.insert_one(report)
    return report


def command(report: dict[str, Any]) -> ConvertReport:
    return ConvertReport(report_id=report["_id"], correlation_id=report["correlation_id"])


class QueueReader:
    """Takes the messages waiting in one queue (nobody else consumes it in these tests)."""

    def __init__(self, amqp_url: str, queue: str) -> None:
        self._url = amqp_url
        self._queue = queue
        self.messages: list[dict[str, Any]] = []

    async def drain(self) -> list[dict[str, Any]]:
        connection = await aio_pika.connect(self._url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(self._queue)
            while (message := await queue.get(fail=False, no_ack=True)) is not None:
                self.messages.append(json.loads(message.body))
        return self.messages


async def holds(reader: QueueReader, count: int) -> bool:
    return len(await reader.drain()) >= count


async def pdf_count(db: Database, report_id: str) -> int:
    return await db["fs.files"].count_documents(
        {"metadata.kind": "pdf", "metadata.report_id": report_id}
    )


async def report_status(db: Database, report_id: str) -> str:
    report = await db.reports.find_one({"_id": report_id})
    assert report is not None
    return str(report["status"])


async def test_rendered_report_becomes_a_pdf_and_the_patient_is_notified(
    make_resources: Callable[[str], Resources], db: Database, settings: Settings, amqp_url: str
) -> None:
    report = await insert_rendered_report(db, make_docx(PATIENT_NAME, GLUCOSE))
    notifications = QueueReader(amqp_url, "notify.patient")
    resources = make_resources("convert")

    async with create_app(resources):
        assert office_processes(settings.work_dir), "LibreOffice is warm before any message"
        await publish(resources.broker, command(report))
        await eventually(lambda: holds(notifications, 1), timeout=60)

    stored = await db.reports.find_one({"_id": report["_id"]})
    assert stored is not None
    assert stored["status"] == "converted"
    assert [h["status"] for h in stored["history"]] == ["converted"]
    pdf = await FileStore(db).get(stored["pdf_file_id"])
    assert sha256_hex(pdf.data) == stored["pdf_sha256"] == pdf.metadata["sha256"]
    assert pdf.metadata == {
        "kind": "pdf",
        "report_id": report["_id"],
        "sha256": stored["pdf_sha256"],
        "content_type": "application/pdf",
    }
    reader = PdfReader(io.BytesIO(pdf.data))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert PATIENT_NAME in text
    assert f"{GLUCOSE} mmol/L" in text
    assert reader.metadata is not None
    assert reader.metadata.title == "Laboratory report"
    assert reader.metadata.subject == "Results of 2026-11-20"
    assert PATIENT_NAME not in str(dict(reader.metadata))
    assert notifications.messages == [
        {
            "report_id": report["_id"],
            "correlation_id": report["correlation_id"],
            "created_at": notifications.messages[0]["created_at"],
            "request_id": None,  # not a staff request to text again
        }
    ]
    assert office_processes(settings.work_dir) == [], "no soffice is left after the app stops"


async def test_redelivered_convert_command_creates_no_second_pdf(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    report = await insert_rendered_report(db, make_docx(PATIENT_NAME, GLUCOSE))
    notifications = QueueReader(amqp_url, "notify.patient")
    resources = make_resources("convert")

    async with create_app(resources):
        await publish(resources.broker, command(report))
        await eventually(lambda: holds(notifications, 1), timeout=60)
        first = await db.reports.find_one({"_id": report["_id"]})
        assert first is not None
        await publish(resources.broker, command(report))
        # The notification goes out again (a crash may have eaten the first) ...
        await eventually(lambda: holds(notifications, 2))

    # ... but nothing else happens twice.
    again = await db.reports.find_one({"_id": report["_id"]})
    assert again is not None
    assert await pdf_count(db, report["_id"]) == 1
    assert again["pdf_file_id"] == first["pdf_file_id"]
    assert len(again["history"]) == 1


async def test_pdf_stored_before_a_crash_is_reused_not_duplicated(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    # A worker that died between storing the PDF and advancing the report left this behind.
    report = await insert_rendered_report(db, make_docx(PATIENT_NAME, GLUCOSE))
    resources = make_resources("convert")
    async with create_app(resources):
        await publish(resources.broker, command(report))
        await eventually(lambda: holds(QueueReader(amqp_url, "notify.patient"), 1), timeout=60)
    converted = await db.reports.find_one({"_id": report["_id"]})
    assert converted is not None
    await db.reports.update_one({"_id": report["_id"]}, {"$set": {"status": "rendered"}})

    resources = make_resources("convert")
    async with create_app(resources):
        await publish(resources.broker, command(report))
        await eventually(lambda: holds(QueueReader(amqp_url, "notify.patient"), 1), timeout=60)

    assert await pdf_count(db, report["_id"]) == 1
    assert await report_status(db, report["_id"]) == "converted"
    after = await db.reports.find_one({"_id": report["_id"]})
    assert after is not None
    assert after["pdf_file_id"] == converted["pdf_file_id"]


async def test_hung_libreoffice_is_replaced_and_the_report_still_converts(
    make_resources: Callable[[str], Resources], db: Database, settings: Settings
) -> None:
    settings.convert_timeout_seconds = 4
    report = await insert_rendered_report(db, make_docx(PATIENT_NAME, GLUCOSE))
    resources = make_resources("convert")

    async with create_app(resources):
        [(_, hung_group), *_] = office_processes(settings.work_dir)
        os.killpg(hung_group, signal.SIGSTOP)  # LibreOffice stops answering mid-flight
        await publish(resources.broker, command(report))
        await eventually(lambda: _is_converted(db, report["_id"]), timeout=60)
        groups = {group for _, group in office_processes(settings.work_dir)}
        assert hung_group not in groups, "the hung process group was killed"
        assert len(groups) == 1, "a fresh LibreOffice took its place"

    assert await pdf_count(db, report["_id"]) == 1
    assert office_processes(settings.work_dir) == []


async def _is_converted(db: Database, report_id: str) -> bool:
    return await report_status(db, report_id) == "converted"


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda valid: valid[: len(valid) // 2], id="truncated-docx"),
        pytest.param(lambda valid: b"PK\x03\x04" + os.urandom(4000), id="garbage-zip"),
        pytest.param(lambda valid: b"Patient,Glucose\nX,5.4\n", id="not-a-docx"),
    ],
)
async def test_corrupt_docx_fails_the_report_with_a_reason_and_dead_letters_the_command(
    make_resources: Callable[[str], Resources],
    db: Database,
    amqp_url: str,
    broken: Callable[[bytes], bytes],
) -> None:
    report = await insert_rendered_report(db, broken(make_docx(PATIENT_NAME, GLUCOSE)))
    dead_letters = QueueReader(amqp_url, "convert.report.dlq")
    resources = make_resources("convert")

    async with create_app(resources):
        await publish(resources.broker, command(report))
        await eventually(lambda: holds(dead_letters, 1), timeout=60)

    failed = await db.reports.find_one({"_id": report["_id"]})
    assert failed is not None
    assert failed["status"] == "failed"
    assert failed["failure_reason"].startswith("the report's .docx cannot be converted")
    assert "pdf_file_id" not in failed
    assert await pdf_count(db, report["_id"]) == 0
    assert [m["report_id"] for m in dead_letters.messages] == [report["_id"]]
    assert await QueueReader(amqp_url, "notify.patient").drain() == []
