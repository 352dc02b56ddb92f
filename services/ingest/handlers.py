"""Ingest handlers: read a batch or an LIS message, store new reports, ask for rendering."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from contracts.v1 import IngestBatch, IngestLisResult, RenderReport, ReportStatus, utcnow
from services.infra.broker import publish
from services.infra.consumer import PermanentError
from services.infra.service import Resources
from services.ingest import adapters, logic

log = structlog.get_logger()


class IngestHandlers:
    def __init__(self, resources: Resources) -> None:
        self.r = resources

    async def ingest_batch(self, message: IngestBatch) -> None:
        batch = await self.r.db.batches.find_one({"_id": message.batch_id})
        if batch is None:
            raise PermanentError(f"batch {message.batch_id} does not exist")
        stored = await self.r.files.get(message.file_id)
        try:
            header, rows = adapters.read_sheet(stored.data, batch["filename"])
            region, today = self.r.settings.default_region, utcnow().date()
            outcome = logic.group_rows(header, rows, region, today)
        except logic.SheetError as error:
            raise PermanentError(str(error)) from None

        created, duplicates = [], 0
        for draft in outcome.drafts:
            source = {"kind": "sheet", "batch_id": message.batch_id, "rows": draft.rows}
            report = await self._store(draft, message.lab_id, message.correlation_id, source)
            if report.get("batch_id") == message.batch_id:
                created.append(report)  # ours, possibly from an earlier delivery of this message
            else:
                duplicates += 1  # the same patient and sample came in an earlier sheet
        await self.r.db.batches.update_one(
            {"_id": message.batch_id},
            {
                "$set": {
                    "status": "ingested",
                    "rows_total": outcome.rows_total,
                    "rows_accepted": outcome.rows_accepted,
                    "rejected_rows": [{"row": r.row, "reason": r.reason} for r in outcome.rejected],
                    "reports_created": len(created),
                    "duplicates": duplicates,
                    "ingested_at": utcnow(),
                }
            },
        )
        log.info(
            "batch.ingested",
            rows=outcome.rows_total,
            rejected=len(outcome.rejected),
            reports=len(created),
            duplicates=duplicates,
        )
        for report in created:
            await self._request_render(report)

    async def ingest_lis_result(self, message: IngestLisResult) -> None:
        try:
            draft = logic.lis_draft(message, self.r.settings.default_region, utcnow().date())
        except logic.RowError as error:
            raise PermanentError(f"LIS message {message.message_id}: {error}") from None
        source = {"kind": "lis", "message_id": message.message_id, "accession": message.accession}
        report = await self._store(draft, message.lab_id, message.correlation_id, source)
        if report["source"].get("message_id") != message.message_id:
            log.info("lis_result.duplicate", report_id=report["_id"])
            return
        await self._request_render(report)

    async def _store(
        self, draft: logic.ReportDraft, lab_id: str, correlation_id: str, source: dict[str, Any]
    ) -> dict[str, Any]:
        """Insert the report, or return the one that already holds its unique key."""
        document = logic.report_document(
            draft,
            report_id=uuid.uuid4().hex,
            lab_id=lab_id,
            correlation_id=correlation_id,
            source=source,
            now=utcnow(),
        )
        try:
            await self.r.db.reports.insert_one(document)
            return document
        except DuplicateKeyError:
            existing = await self.r.db.reports.find_one(
                {"lab_id": lab_id, "source_key": draft.source_key, "version": 1}
            )
            if existing is None:  # pragma: no cover - the key existed a moment ago
                raise
            return existing

    async def _request_render(self, report: dict[str, Any]) -> None:
        # Only reports still waiting: on redelivery the rest are already on their way.
        if report["status"] == ReportStatus.RECEIVED:
            await publish(
                self.r.broker,
                RenderReport(report_id=report["_id"], correlation_id=report["correlation_id"]),
            )

    async def give_up_batch(self, message: IngestBatch, reason: str) -> None:
        await self.r.db.batches.update_one(
            {"_id": message.batch_id},
            {"$set": {"status": "failed", "failure_reason": reason, "failed_at": utcnow()}},
        )

    async def give_up_lis_result(self, message: IngestLisResult, reason: str) -> None:
        # The message itself goes to the dead-letter queue; this record says why.
        await self.r.db.rejected_messages.update_one(
            {"message_id": message.message_id, "lab_id": message.lab_id},
            {
                "$set": {"reason": reason, "accession": message.accession, "at": utcnow()},
                "$setOnInsert": {"correlation_id": message.correlation_id},
            },
            upsert=True,
        )
