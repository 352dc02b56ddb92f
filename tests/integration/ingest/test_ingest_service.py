"""Ingest against real RabbitMQ and the MongoDB-protocol server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from contracts.v1 import IngestBatch
from devtools.demo import demo_rows, demo_sheet, sheet_of
from services.infra.broker import publish
from services.infra.database import Database
from services.infra.service import Resources
from services.ingest.main import create_app
from tests.support import drain, eventually, lis_message


async def upload(
    resources: Resources, data: bytes, filename: str = "results.xlsx", profile: str | None = None
) -> str:
    """What the gateway does on upload: store the sheet, record the batch, ask for ingest."""
    batch_id = uuid.uuid4().hex
    file_id = await resources.files.put(filename, data, {"kind": "upload"})
    await resources.db.batches.insert_one(
        {
            "_id": batch_id,
            "lab_id": "demo-lab",
            "filename": filename,
            "file_id": file_id,
            "status": "received",
            "correlation_id": batch_id,
        }
    )
    await publish(
        resources.broker,
        IngestBatch(
            batch_id=batch_id,
            lab_id="demo-lab",
            file_id=file_id,
            correlation_id=batch_id,
            profile=profile,
        ),
    )
    return batch_id


async def finished(db: Database, batch_id: str) -> dict[str, Any] | None:
    return await db.batches.find_one({"_id": batch_id, "status": {"$ne": "received"}})


async def test_uploaded_sheet_makes_one_report_per_patient_and_asks_to_render_each(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        batch_id = await upload(resources, demo_sheet(5))
        batch = await eventually(lambda: finished(db, batch_id))
    assert batch["status"] == "ingested"
    assert (batch["rows_total"], batch["rows_accepted"], batch["reports_created"]) == (40, 40, 5)
    reports = await db.reports.find({"batch_id": batch_id}).to_list()
    assert len(reports) == 5
    assert {r["status"] for r in reports} == {"received"}
    assert all(len(r["results"]) == 8 and r["patient"]["phone"].startswith("+44") for r in reports)
    render_requests = await drain(amqp_url, "render.report")
    assert sorted(m["report_id"] for m in render_requests) == sorted(r["_id"] for r in reports)
    assert {m["correlation_id"] for m in render_requests} == {batch_id}


async def test_reuploaded_sheet_creates_no_new_reports(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("ingest")
    sheet = demo_sheet(3)
    async with create_app(resources):
        first = await upload(resources, sheet)
        await eventually(lambda: finished(db, first))
        second = await upload(resources, sheet)
        again = await eventually(lambda: finished(db, second))
    assert again["reports_created"] == 0
    assert [d["row"] for d in again["duplicates"]] == ["2–9", "10–17", "18–25"]
    assert again["duplicates"][0]["reason"].endswith(
        f"already reported from batch {first}; not used again"
    )
    assert await db.reports.count_documents({}) == 3
    assert len(await drain(amqp_url, "render.report")) == 3


async def test_redelivered_ingest_message_creates_nothing_twice(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        batch_id = await upload(resources, demo_sheet(2))
        batch = await eventually(lambda: finished(db, batch_id))
        await drain(amqp_url, "render.report")
        # The same message again, as after a crash before the ack.
        await publish(
            resources.broker,
            IngestBatch(
                batch_id=batch_id,
                lab_id="demo-lab",
                file_id=batch["file_id"],
                correlation_id=batch_id,
            ),
        )
        again = await eventually(lambda: drain(amqp_url, "render.report"))
    assert await db.reports.count_documents({}) == 2
    # Reports still waiting are asked for again: render ignores what it already did.
    assert len(again) == 2


async def test_unreadable_file_fails_the_batch_with_the_reason_and_dead_letters_it(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        batch_id = await upload(resources, b"this is not a workbook", "results.xlsx")
        batch = await eventually(lambda: finished(db, batch_id))
        dead = await eventually(lambda: drain(amqp_url, "ingest.batch.dlq"))
    assert batch["status"] == "failed"
    assert "'results.xlsx' is not a readable .xlsx workbook" in batch["failure_reason"]
    assert dead[0]["batch_id"] == batch_id
    assert await db.reports.count_documents({}) == 0


async def test_rejected_rows_are_listed_on_the_batch_and_the_rest_go_on(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    from io import BytesIO

    from openpyxl import load_workbook

    workbook = load_workbook(BytesIO(demo_sheet(2)))
    sheet = workbook.active
    assert sheet is not None
    sheet["E3"] = "12345"  # phone of the second row
    sheet["H10"] = None  # value of the first row of the second patient
    buffer = BytesIO()
    workbook.save(buffer)
    resources = make_resources("ingest")
    async with create_app(resources):
        batch_id = await upload(resources, buffer.getvalue())
        batch = await eventually(lambda: finished(db, batch_id))
    assert batch["rejected_rows"] == [
        {"row": 3, "reason": "Phone '12345' is not a valid number for region GB"},
        {"row": 10, "reason": "Value is empty"},
    ]
    assert (batch["rows_total"], batch["rows_accepted"], batch["reports_created"]) == (16, 14, 2)


async def test_lis_result_message_makes_a_report_once(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        await publish(resources.broker, lis_message())
        await publish(resources.broker, lis_message(message_id="LIS-1-resent"))
        requests = await eventually(lambda: drain(amqp_url, "render.report"))
        await eventually(lambda: db.reports.count_documents({}))
    [report] = await db.reports.find({}).to_list()
    assert report["source"] == {
        "kind": "lis",
        "message_id": "LIS-1",
        "accession": "ACC-1",
        "at": report["source"]["at"],  # when the LIS made it: a later correction wins
    }
    assert report["patient"]["phone"] == "+447400123456"
    assert [m["report_id"] for m in requests] == [report["_id"]]


async def test_unusable_lis_message_is_dead_lettered_with_a_recorded_reason(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("ingest")
    bad = lis_message(message_id="LIS-2", accession="ACC-2")
    bad = bad.model_copy(update={"patient": bad.patient.model_copy(update={"phone": "000"})})
    async with create_app(resources):
        await publish(resources.broker, bad)
        dead = await eventually(lambda: drain(amqp_url, "ingest.lis-result.dlq"))
    assert dead[0]["message_id"] == "LIS-2"
    rejection = await db.rejected_messages.find_one({"message_id": "LIS-2"})
    assert rejection is not None and "Phone" in rejection["reason"]
    assert await db.reports.count_documents({}) == 0


async def test_lis_message_for_a_lab_not_configured_is_dead_lettered_and_stores_no_report(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        await publish(resources.broker, lis_message(message_id="LIS-X", lab_id="other-lab"))
        dead = await eventually(lambda: drain(amqp_url, "ingest.lis-result.dlq"))
    assert dead[0]["message_id"] == "LIS-X"
    rejection = await db.rejected_messages.find_one({"message_id": "LIS-X"})
    assert rejection is not None and rejection["lab_id"] == "other-lab"
    assert "lab 'other-lab' is not a lab this deployment serves" in rejection["reason"]
    assert await db.reports.count_documents({}) == 0
    assert await drain(amqp_url, "render.report") == []


async def test_lis_message_for_a_lab_listed_in_lab_ids_is_accepted(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("ingest")
    resources.settings = resources.settings.model_copy(update={"lab_ids": "north-lab, south-lab"})
    async with create_app(resources):
        await publish(resources.broker, lis_message(lab_id="south-lab"))
        await eventually(lambda: drain(amqp_url, "render.report"))
    [report] = await db.reports.find({}).to_list()
    assert report["lab_id"] == "south-lab"


async def test_batch_for_a_lab_not_configured_fails_with_the_reason(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    resources = make_resources("ingest")
    batch_id = uuid.uuid4().hex
    file_id = await resources.files.put("r.xlsx", demo_sheet(1), {"kind": "upload"})
    await db.batches.insert_one(
        {"_id": batch_id, "lab_id": "other-lab", "filename": "r.xlsx", "file_id": file_id}
        | {"status": "received", "correlation_id": batch_id}
    )
    async with create_app(resources):
        await publish(
            resources.broker,
            IngestBatch(
                batch_id=batch_id, lab_id="other-lab", file_id=file_id, correlation_id=batch_id
            ),
        )
        batch = await eventually(lambda: finished(db, batch_id))
    assert batch["status"] == "failed"
    assert "lab 'other-lab' is not a lab this deployment serves" in batch["failure_reason"]
    assert await db.reports.count_documents({}) == 0


def with_entity_bomb(workbook: bytes) -> bytes:
    """The same workbook whose sheet XML declares an exponential entity (billion laughs)."""
    import io
    import zipfile

    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10}">'.replace(
                "&lol0;", "&lol;"
            ).encode()
            for n in range(1, 10)
        )
        + b"]>"
    )
    source, target = io.BytesIO(workbook), io.BytesIO()
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                body = data.split(b"?>", 1)[-1]  # any XML declaration goes before the DOCTYPE
                data = bomb + body.replace(b"P10000", b"&lol9;", 1)
            zout.writestr(item, data)
    return target.getvalue()


async def test_sheet_with_an_xml_entity_bomb_is_refused_without_expanding_it(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        batch_id = await upload(resources, with_entity_bomb(demo_sheet(1)))
        batch = await eventually(lambda: finished(db, batch_id), timeout=20)
    assert batch["status"] == "failed"
    assert "contains XML constructs that are not allowed" in batch["failure_reason"]
    assert await db.reports.count_documents({}) == 0


async def test_csv_sheet_in_the_default_layout_is_read_like_a_workbook(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    from devtools.demo import HEADER, demo_rows

    lines = [",".join(HEADER)]
    for row in demo_rows(2):
        lines.append(",".join(str(cell) for cell in row))
    resources = make_resources("ingest")
    async with create_app(resources):
        batch_id = await upload(resources, "\n".join(lines).encode(), "results.csv")
        batch = await eventually(lambda: finished(db, batch_id))
    assert (batch["status"], batch["reports_created"], batch["rejected_rows"]) == (
        "ingested",
        2,
        [],
    )


# --- corrections -------------------------------------------------------------------------


async def test_a_corrected_sheet_makes_a_second_version_that_supersedes_the_first(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    rows = demo_rows(2, sample_date=date(2026, 11, 20))
    corrected = [list(row) for row in rows]
    corrected[4][7] = "9.9"  # the first patient's potassium, typed wrongly the first time
    resources = make_resources("ingest")
    async with create_app(resources):
        first = await upload(resources, sheet_of(rows))
        await eventually(lambda: finished(db, first))
        await drain(amqp_url, "render.report")
        second = await upload(resources, sheet_of(corrected))
        batch = await eventually(lambda: finished(db, second))

    assert batch["reports_created"] == 1
    assert [d["row"] for d in batch["duplicates"]] == ["10–17"]  # the other patient: unchanged
    [correction] = batch["corrections"]
    assert correction["row"] == "2–9"
    assert correction["reason"].endswith("version 2 replaces version 1; changed: Potassium")
    versions = await db.reports.find({"patient.patient_id": "P10000"}).sort("version").to_list()
    assert [(v["version"], v["status"]) for v in versions] == [(1, "superseded"), (2, "received")]
    old, new = versions
    assert old["superseded_by"] == new["_id"] and new["previous_id"] == old["_id"]
    [change] = new["changes"]
    assert change["what"] == "Potassium" and change["after"].startswith("9.9 mmol/L")
    [render] = await drain(amqp_url, "render.report")
    assert render["report_id"] == new["_id"]


async def test_the_same_sheet_again_changes_nothing(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    sheet = sheet_of(demo_rows(2, sample_date=date(2026, 11, 20)))
    resources = make_resources("ingest")
    async with create_app(resources):
        first = await upload(resources, sheet)
        await eventually(lambda: finished(db, first))
        second = await upload(resources, sheet)
        batch = await eventually(lambda: finished(db, second))
    assert (batch["reports_created"], len(batch["duplicates"]), batch["corrections"]) == (0, 2, [])
    assert await db.reports.count_documents({}) == 2
    assert len(await drain(amqp_url, "render.report")) == 2


async def test_rows_uploaded_for_an_incomplete_report_complete_it(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    rows = demo_rows(1, sample_date=date(2026, 11, 20))
    broken = [list(row) for row in rows]
    broken[4][10] = "ZZ"  # potassium flagged with a flag no vocabulary knows
    resources = make_resources("ingest")
    async with create_app(resources):
        first = await upload(resources, sheet_of(broken))
        await eventually(lambda: finished(db, first))
        v1 = await db.reports.find_one({"version": 1})
        assert v1 is not None and [r["row"] for r in v1["rejected_rows"]] == [6]
        # What notify's release gate does with it.
        await db.reports.update_one({"_id": v1["_id"]}, {"$set": {"status": "needs_attention"}})
        fixed = [list(rows[4])]  # only the corrected row
        second = await upload(resources, sheet_of(fixed))
        await eventually(lambda: finished(db, second))
    v2 = await db.reports.find_one({"version": 2})
    assert v2 is not None
    assert len(v2["results"]) == 8 and v2["rejected_rows"] == []
    assert [c["what"] for c in v2["changes"]] == ["Potassium"]
    assert (await db.reports.find_one({"_id": v1["_id"]}))["status"] == "superseded"  # type: ignore[index]


async def test_a_corrected_lis_message_makes_a_new_version_and_a_resent_one_nothing(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        await publish(resources.broker, lis_message())
        await eventually(lambda: db.reports.find_one({"version": 1}))
        await publish(resources.broker, lis_message(message_id="LIS-1-again"))
        corrected = [{"test": "HbA1c", "value": "41", "unit": "mmol/mol", "flag": ""}]
        await publish(resources.broker, lis_message(message_id="LIS-2", results=corrected))
        v2 = await eventually(lambda: db.reports.find_one({"version": 2}))
        await asyncio.sleep(0.3)
    assert await db.reports.count_documents({}) == 2
    assert v2["changes"] == [{"what": "HbA1c", "before": "48 mmol/mol (H)", "after": "41 mmol/mol"}]
    assert (await db.reports.find_one({"version": 1}))["status"] == "superseded"  # type: ignore[index]
    renders = await drain(amqp_url, "render.report")
    assert len(renders) == 2


async def test_corrections_arriving_together_leave_the_newest_current_whatever_the_order(
    make_resources: Callable[[str], Resources], db: Database
) -> None:
    resources = make_resources("ingest")
    async with create_app(resources):
        for n in range(4):  # four corrections in quick succession, handled concurrently
            value = [{"test": "HbA1c", "value": str(40 + n), "unit": "mmol/mol"}]
            await publish(resources.broker, lis_message(message_id=f"LIS-{n}", results=value))
        await eventually(lambda: _current_value_is(db, "43"))
        await asyncio.sleep(0.5)
    reports = await db.reports.find().sort("version").to_list()
    assert [r["status"] for r in reports] == ["superseded"] * (len(reports) - 1) + ["received"]
    made = [r["source"]["at"] for r in reports]
    assert made == sorted(made), "a later version always comes from a later message"


async def _current_value_is(db: Database, value: str) -> bool:
    current = await db.reports.find_one({"status": "received"})
    return current is not None and current["results"][0]["value"] == value


async def test_a_batch_cancelled_before_it_is_read_makes_no_report(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    resources = make_resources("ingest")
    batch_id = uuid.uuid4().hex
    file_id = await resources.files.put("x.xlsx", demo_sheet(2), {"kind": "upload"})
    await db.batches.insert_one(
        {
            "_id": batch_id,
            "lab_id": "demo-lab",
            "filename": "x.xlsx",
            "file_id": file_id,
            "status": "cancelled",
            "correlation_id": batch_id,
        }
    )
    async with create_app(resources):
        await publish(
            resources.broker,
            IngestBatch(
                batch_id=batch_id, lab_id="demo-lab", file_id=file_id, correlation_id=batch_id
            ),
        )
        await asyncio.sleep(1)
    assert await db.reports.count_documents({}) == 0
    assert (await db.batches.find_one({"_id": batch_id}))["status"] == "cancelled"  # type: ignore[index]
    assert await drain(amqp_url, "render.report") == []
