"""A lost publish does not leave work stuck for ever: the gateway's re-driver sends again the
command of a report stuck at its stage and the IngestBatch of an upload nobody read, once
per turn across replicas, and gives up to a person after three tries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from contracts.v1 import utcnow
from services.gateway.redriver import MOST_REDRIVES, Redriver
from services.infra.database import Database
from services.infra.service import Resources
from tests.support import drain, report_document


async def test_a_stuck_report_and_an_unread_upload_are_sent_on_again_at_most_three_times(
    make_resources: Callable[[str], Resources], db: Database, amqp_url: str
) -> None:
    long_ago = utcnow() - timedelta(minutes=40)
    stuck = report_document(status="rendered", updated_at=long_ago, docx_file_id="f1")
    moving = report_document(status="rendered")
    await db.reports.insert_many([stuck, moving])
    await db.batches.insert_one(
        {"_id": "b-lost", "lab_id": "demo-lab", "filename": "a.xlsx", "file_id": "file-1",
         "uploaded_by": "ann", "uploaded_at": long_ago, "correlation_id": "c-b",
         "status": "received"}
    )  # fmt: skip
    resources, replica = make_resources("gateway"), make_resources("gateway")
    for each in (resources, replica):
        await each.start()
    try:
        first, second = Redriver(resources), Redriver(replica)
        now = utcnow()
        assert await first.tick(now) + await second.tick(now) == 2  # one of them sent each
        [convert] = await drain(amqp_url, "convert.report")
        assert convert["report_id"] == stuck["_id"]
        [ingest] = await drain(amqp_url, "ingest.batch")
        assert (ingest["batch_id"], ingest["file_id"]) == ("b-lost", "file-1")
        assert await first.tick(now + timedelta(minutes=1)) == 0  # not again within the wait

        await db.reports.delete_one({"_id": moving["_id"]})  # it would be stuck by then too
        later = now
        for _ in range(MOST_REDRIVES - 1):
            later += timedelta(minutes=16)
            assert await first.tick(later) == 2
        assert await first.tick(later + timedelta(minutes=16)) == 0  # a person decides now
        report = await db.reports.find_one({"_id": stuck["_id"]})
        assert report and report["redrives"] == MOST_REDRIVES
    finally:
        for each in (resources, replica):
            await each.broker.stop()
            await each.close()
