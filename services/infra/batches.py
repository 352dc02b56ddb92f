"""The owner of the `batches` collection: the gateway records an upload, ingest reads it and
marks it ingested, either fails one that can never be read."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from contracts.v1 import utcnow
from services.infra import documents
from services.infra.database import Database
from services.infra.documents import BatchDocument, BatchStatus


class Batches:
    def __init__(self, db: Database) -> None:
        self._collection = documents.batches(db)

    async def create(
        self, *, lab_id: str, filename: str, file_id: str, uploaded_by: str
    ) -> BatchDocument:
        batch: BatchDocument = {
            "_id": uuid.uuid4().hex,
            "lab_id": lab_id,
            "filename": filename,
            "file_id": file_id,
            "uploaded_by": uploaded_by,
            "uploaded_at": utcnow(),
            "correlation_id": uuid.uuid4().hex,
            "status": BatchStatus.RECEIVED,
            "rows_total": 0,
            "rows_accepted": 0,
            "rejected_rows": [],
            "reports_created": 0,
            "duplicates": 0,
            "failure_reason": "",
        }
        await self._collection.insert_one(batch)
        return batch

    async def unread(self, before: datetime, most: int, limit: int = 100) -> list[BatchDocument]:
        """Batches still `received` (no ingest has read them) since before `before`, and
        re-driven fewer than `most` times: their IngestBatch may have been lost."""
        query: dict[str, Any] = {
            "status": BatchStatus.RECEIVED,
            "uploaded_at": {"$lte": before},
            "$and": [
                {"$or": [{"redriven_at": None}, {"redriven_at": {"$lte": before}}]},
                {"$or": [{"redrives": None}, {"redrives": {"$lt": most}}]},
            ],
        }
        return await self._collection.find(query).limit(limit).to_list()

    async def claim_redrive(self, batch: BatchDocument, now: datetime) -> bool:
        """Take the turn to send a batch's IngestBatch again (one replica wins)."""
        result = await self._collection.update_one(
            {
                "_id": batch["_id"],
                "status": BatchStatus.RECEIVED,
                "redriven_at": batch.get("redriven_at"),
            },
            {"$set": {"redriven_at": now}, "$inc": {"redrives": 1}},
        )
        return result.modified_count == 1

    async def get(self, batch_id: str) -> BatchDocument | None:
        return await self._collection.find_one({"_id": batch_id})

    async def mark_ingested(self, batch_id: str, summary: dict[str, Any]) -> bool:
        """Record what ingest made of the batch; False when it was cancelled meanwhile."""
        result = await self._collection.update_one(
            {"_id": batch_id, "status": {"$in": [BatchStatus.RECEIVED, BatchStatus.INGESTED]}},
            {"$set": {**summary, "status": BatchStatus.INGESTED, "ingested_at": utcnow()}},
        )
        return result.matched_count == 1

    async def cancel(self, batch_id: str, by: str, reason: str) -> None:
        await self._collection.update_one(
            {"_id": batch_id},
            {
                "$set": {
                    "status": BatchStatus.CANCELLED,
                    "cancellation": {"by": by, "at": utcnow(), "reason": reason},
                }
            },
        )

    async def fail(self, batch_id: str, reason: str) -> None:
        # Only a batch that never got through: an ingested one has reports on their way.
        await self._collection.update_one(
            {"_id": batch_id, "status": BatchStatus.RECEIVED},
            {
                "$set": {
                    "status": BatchStatus.FAILED,
                    "failure_reason": reason,
                    "failed_at": utcnow(),
                }
            },
        )
