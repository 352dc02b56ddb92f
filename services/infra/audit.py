"""The owner of the `audit` collection (append-only): who saw or changed what, when."""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING

from contracts.v1 import utcnow
from services.infra import documents
from services.infra.database import Database
from services.infra.documents import AuditRecord

PATIENT = "patient"


def staff(username: str) -> str:
    """The actor recorded for a member of lab staff."""
    return f"admin:{username}"


class Audit:
    def __init__(self, db: Database) -> None:
        self._collection = documents.audit(db)

    async def write(
        self, actor: str, action: str, report_id: str | None, detail: dict[str, Any]
    ) -> None:
        record: AuditRecord = {
            "at": utcnow(),
            "actor": actor,
            "action": action,
            "report_id": report_id,
            "detail": detail,
        }
        await self._collection.insert_one(record)

    async def portal_events(self, report_id: str, limit: int) -> tuple[list[AuditRecord], bool]:
        """The patient's portal activity on a report: see `_latest`."""
        return await self._latest({"report_id": report_id, "actor": PATIENT}, limit)

    async def staff_events(self, report_id: str, limit: int) -> tuple[list[AuditRecord], bool]:
        """Lab staff's access to a report (page opened, PDF viewed): see `_latest`."""
        return await self._latest({"report_id": report_id, "actor": {"$ne": PATIENT}}, limit)

    async def _latest(self, query: dict[str, Any], limit: int) -> tuple[list[AuditRecord], bool]:
        """The latest `limit` matching records, oldest first, and whether older ones exist."""
        cursor = (
            self._collection.find(query, {"at": 1, "actor": 1, "action": 1, "detail": 1})
            .sort([("at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
        )
        records = await cursor.to_list()
        return records[:limit][::-1], len(records) > limit
