"""The owner of the `batches` collection: the gateway records an upload, ingest reads it and
marks it ingested (or, for a preview, records what it would make until staff confirm or
discard it), either fails one that can never be read."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from contracts.v1 import utcnow
from services.infra import documents
from services.infra.database import Database
from services.infra.documents import BatchDocument, BatchStatus

if TYPE_CHECKING:
    from pymongo.asynchronous.client_session import AsyncClientSession


class Batches:
    def __init__(self, db: Database) -> None:
        self._collection = documents.batches(db)

    async def create(
        self,
        *,
        lab_id: str,
        filename: str,
        file_id: str,
        uploaded_by: str,
        profile: str | None = None,
        preview: bool = False,
        template: str | None = None,
        session: AsyncClientSession | None = None,
    ) -> BatchDocument:
        """A new batch: `received` (ingest will make its reports), or `previewing` (ingest
        only records what it would make, until staff confirm or discard it)."""
        batch: BatchDocument = {
            "_id": uuid.uuid4().hex,
            "lab_id": lab_id,
            "filename": filename,
            "file_id": file_id,
            "uploaded_by": uploaded_by,
            "uploaded_at": utcnow(),
            "correlation_id": uuid.uuid4().hex,
            "status": BatchStatus.PREVIEWING if preview else BatchStatus.RECEIVED,
            "rows_total": 0,
            "rows_accepted": 0,
            "rejected_rows": [],
            "reports_created": 0,
            "duplicates": 0,
            "failure_reason": "",
            "profile": profile,
            "template": template,
        }
        # `session`: stored with its IngestBatch in one transaction (`services.infra.outbox`).
        await self._collection.insert_one(batch, session=session)
        return batch

    async def unread(self, before: datetime, most: int, limit: int = 100) -> list[BatchDocument]:
        """Batches still `received` (no ingest has read them), or `previewing` with no
        preview yet, since before `before`, and re-driven fewer than `most` times: their
        IngestBatch may have been lost."""
        query: dict[str, Any] = {
            "$or": [
                {"status": BatchStatus.RECEIVED},
                {"status": BatchStatus.PREVIEWING, "preview": {"$exists": False}},
            ],
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
                "status": batch["status"],
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

    async def record_preview(self, batch_id: str, preview: dict[str, Any]) -> bool:
        """Ingest's preview of a batch still waiting for staff; False when it no longer is."""
        result = await self._collection.update_one(
            {"_id": batch_id, "status": BatchStatus.PREVIEWING},
            {"$set": {"preview": {**preview, "made_at": utcnow()}}},
        )
        return result.matched_count == 1

    async def decide_preview(
        self,
        batch_id: str,
        by: str,
        *,
        confirm: bool,
        session: AsyncClientSession | None = None,
    ) -> BatchDocument | None:
        """Confirm a previewed batch (it becomes `received`: ingest is to make its reports)
        or discard it; one conditional update, so only one decision ever wins. The batch as
        it is now, or None when it was not waiting for one with its preview made."""
        status = BatchStatus.RECEIVED if confirm else BatchStatus.DISCARDED
        now = utcnow()
        decision = {"by": by, "at": now, "reason": "confirmed" if confirm else "discarded"}
        # A confirmed batch's IngestBatch is sent now: the redriver's clock starts here.
        sent = {"redriven_at": now} if confirm else {}
        wanted: dict[str, Any] = {"_id": batch_id, "status": BatchStatus.PREVIEWING}
        if confirm:
            wanted["preview"] = {"$exists": True}
        return await self._collection.find_one_and_update(
            wanted,
            {"$set": {"status": status, "confirmation": decision, **sent}},
            return_document=ReturnDocument.AFTER,
            session=session,  # a confirmation is stored with its IngestBatch (the outbox)
        )

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
            {"_id": batch_id, "status": {"$in": [BatchStatus.RECEIVED, BatchStatus.PREVIEWING]}},
            {
                "$set": {
                    "status": BatchStatus.FAILED,
                    "failure_reason": reason,
                    "failed_at": utcnow(),
                }
            },
        )
