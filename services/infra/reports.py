"""Report persistence shared by every stage: load, and advance status atomically.

Each status change is one conditional update (`status` must be one from which the target
may be reached), so a duplicate message changes nothing; each change that happened is
announced as `ReportStatusChanged`.
"""

from __future__ import annotations

from typing import Any

import structlog
from faststream.rabbit import RabbitBroker
from pymongo import ReturnDocument

from contracts.v1 import ReportStatus, ReportStatusChanged, utcnow
from services.infra.broker import publish
from services.infra.consumer import PermanentError
from services.infra.database import Database
from services.infra.report_status import sources_of

log = structlog.get_logger()


class ReportNotFoundError(PermanentError):
    def __init__(self, report_id: str) -> None:
        super().__init__(f"report {report_id} does not exist")


class Reports:
    def __init__(self, db: Database, broker: RabbitBroker) -> None:
        self._db = db
        self._broker = broker

    async def get(self, report_id: str) -> dict[str, Any]:
        report = await self._db.reports.find_one({"_id": report_id})
        if report is None:
            raise ReportNotFoundError(report_id)
        return report

    async def advance(
        self,
        report: dict[str, Any],
        to: ReportStatus,
        *,
        fields: dict[str, Any] | None = None,
        reason: str = "",
    ) -> bool:
        """Move `report` to `to` if its current status allows it; False when it did not."""
        now = utcnow()
        before = await self._db.reports.find_one_and_update(
            {"_id": report["_id"], "status": {"$in": [s.value for s in sources_of(to)]}},
            {
                "$set": {"status": to.value, "updated_at": now, **(fields or {})},
                "$push": {"history": {"status": to.value, "at": now, "reason": reason}},
            },
            projection={"status": 1},
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            return False
        log.info("report.status_changed", report_id=report["_id"], status=to.value)
        await publish(
            self._broker,
            ReportStatusChanged(
                correlation_id=report["correlation_id"],
                report_id=report["_id"],
                batch_id=report.get("batch_id"),
                lab_id=report["lab_id"],
                status=to,
                previous_status=ReportStatus(before["status"]),
                reason=reason,
            ),
        )
        return True

    async def fail(self, report_id: str, reason: str) -> None:
        """Mark the report failed with a reason a lab user can act on."""
        report = await self._db.reports.find_one({"_id": report_id})
        if report is not None:
            await self.advance(
                report, ReportStatus.FAILED, fields={"failure_reason": reason}, reason=reason
            )
