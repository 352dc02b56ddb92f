"""What the admin pages, the admin API and the live batch stream read: batches, reports (and
how to filter them), notifications and the development outbox. Reads only; each collection's
writes belong to its owner (`services.infra.owners.OWNERS`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING

from contracts.v1 import ReportStatus, utcnow
from services.gateway import logic
from services.infra import documents, report_status
from services.infra.database import Database
from services.infra.documents import (
    BatchDocument,
    BatchStatus,
    NotificationDocument,
    OutboxMessage,
    ReportDocument,
)
from services.infra.report_status import WAITING


@dataclass(frozen=True)
class ReportFilter:
    """What the reports list and `GET /api/v1/reports` filter on; empty means any."""

    batch_id: str = ""
    status: str = ""
    patient_id: str = ""
    phone: str = ""
    q: str = ""  # part of the patient's name or id, or the LIS accession, in any case
    sampled_from: str = ""  # sample dates, YYYY-MM-DD, both ends included
    sampled_to: str = ""
    stuck: str = ""  # "1": only reports that have not moved for longer than their stage allows
    made_since: str = ""  # an ISO date-time: only reports made since then (the glance's links)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ReportFilter:
        status = _get(query, "status")
        return cls(
            stuck="1" if _get(query, "stuck") in ("1", "true", "yes") else "",
            batch_id=_get(query, "batch_id", "batch"),
            status=status if status in set(ReportStatus) else "",
            patient_id=_get(query, "patient_id"),
            phone=re.sub(r"[\s().-]", "", _get(query, "phone")),
            q=_get(query, "q"),
            sampled_from=_iso_date(_get(query, "sampled_from")),
            sampled_to=_iso_date(_get(query, "sampled_to")),
            made_since=_iso_datetime(_get(query, "made_since")),
        )

    def mongo(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.batch_id:
            query["batch_id"] = self.batch_id
        if self.status:
            query["status"] = self.status
        if self.patient_id:
            query["patient.patient_id"] = self.patient_id
        if self.phone:
            query["patient.phone"] = self.phone
        if self.q:
            pattern = _contains(self.q)
            query["$or"] = [
                {"patient.name": pattern},
                {"patient.patient_id": pattern},
                {"source.accession": pattern},
            ]
        if self.sampled_from or self.sampled_to:
            # ISO dates compare as text.
            query["sample_date"] = {
                **({"$gte": self.sampled_from} if self.sampled_from else {}),
                **({"$lte": self.sampled_to} if self.sampled_to else {}),
            }
        if self.made_since:
            query["created_at"] = {"$gte": datetime.fromisoformat(self.made_since)}
        if self.stuck:
            return {"$and": [query, report_status.stuck_query(utcnow())]}
        return query

    def params(self) -> dict[str, str]:
        """The filters set, for links that keep them (next page)."""
        return {k: v for k, v in vars(self).items() if v}


@dataclass(frozen=True)
class BatchFilter:
    """What the batch list and `GET /api/v1/batches` filter on; empty means any."""

    status: str = ""
    q: str = ""  # part of the file name, in any case
    uploaded_by: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, uploader: str = "") -> BatchFilter:
        """`uploader`: the one uploader whose batches the asker may see ("" for all)."""
        status = _get(query, "status")
        return cls(
            status=status if status in set(BatchStatus) else "",
            q=_get(query, "q"),
            uploaded_by=uploader or _get(query, "uploaded_by"),
        )

    def mongo(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.status:
            query["status"] = self.status
        if self.q:
            query["filename"] = _contains(self.q)
        if self.uploaded_by:
            query["uploaded_by"] = self.uploaded_by
        return query

    def params(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}


def _get(query: Mapping[str, str], *names: str) -> str:
    return next((query[n].strip()[:200] for n in names if query.get(n, "").strip()), "")


def _contains(text: str) -> dict[str, str]:
    """Text anywhere in a field, any case: what staff type is never a pattern."""
    return {"$regex": re.escape(text), "$options": "i"}


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat() if text else ""
    except ValueError:
        return ""


def _iso_datetime(text: str) -> str:
    """A date-time with its offset, as given; "" when it is not one."""
    try:
        return text if text and datetime.fromisoformat(text).tzinfo else ""
    except ValueError:
        return ""


def page_number(query: Mapping[str, str]) -> int | None:
    """The `page` asked for (1 when none); None when it is not a whole number."""
    try:
        return max(1, int(query.get("page", "1")))
    except ValueError:
        return None


class BatchQueries:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._batches = documents.batches(db)
        self._reports = documents.reports(db)

    async def get(self, batch_id: str) -> BatchDocument | None:
        return await self._batches.find_one({"_id": batch_id})

    async def page(self, filters: BatchFilter, page: int) -> tuple[list[BatchDocument], bool]:
        """One page of batches (newest first) and whether there is a next page."""
        size = logic.BATCHES_PAGE_SIZE
        cursor = (
            self._batches.find(filters.mongo())
            .sort([("uploaded_at", DESCENDING), ("_id", ASCENDING)])
            .skip((page - 1) * size)
            .limit(size + 1)
        )
        rows = await cursor.to_list()
        return rows[:size], len(rows) > size

    async def status_counts(self, batch_ids: list[str]) -> dict[str, dict[str, int]]:
        """Reports per status for each batch: {batch_id: {status: count}}."""
        counts: dict[str, dict[str, int]] = {batch_id: {} for batch_id in batch_ids}
        if not batch_ids:
            return counts
        cursor = await self._db.reports.aggregate(
            [
                {"$match": {"batch_id": {"$in": batch_ids}}},
                {"$group": {"_id": {"batch": "$batch_id", "status": "$status"}, "n": {"$sum": 1}}},
            ]
        )
        async for row in cursor:
            counts.setdefault(row["_id"]["batch"], {})[row["_id"]["status"]] = int(row["n"])
        return counts

    async def summary(self, batch_id: str) -> dict[str, Any] | None:
        batch = await self.get(batch_id)
        if batch is None:
            return None
        counts = await self.status_counts([batch_id])
        return logic.batch_count_summary(batch, counts[batch_id])

    async def reports(
        self, batch_id: str, statuses: list[ReportStatus] | None = None
    ) -> list[ReportDocument]:
        """The batch's reports (in these statuses), without their link or history."""
        query: dict[str, Any] = {"batch_id": batch_id}
        if statuses is not None:
            query["status"] = {"$in": [s.value for s in statuses]}
        cursor = self._reports.find(query, {"access": 0, "history": 0}).sort("_id", ASCENDING)
        return await cursor.to_list()

    async def failed_reports(self, batch_id: str, limit: int = 500) -> list[ReportDocument]:
        cursor = (
            self._reports.find(
                {"batch_id": batch_id, "status": ReportStatus.FAILED.value},
                {"patient.patient_id": 1, "failure_reason": 1, "source": 1, "updated_at": 1},
            )
            .sort("updated_at", DESCENDING)
            .limit(limit)
        )
        return await cursor.to_list()


class ReportQueries:
    def __init__(self, db: Database) -> None:
        self._reports = documents.reports(db)

    async def page(self, filters: ReportFilter, page: int) -> tuple[list[ReportDocument], bool]:
        """One page of reports (newest first) and whether there is a next page."""
        size = logic.REPORTS_PAGE_SIZE
        cursor = (
            self._reports.find(
                filters.mongo(),
                {
                    "patient.patient_id": 1,
                    "patient.name": 1,
                    "sample_date": 1,
                    "status": 1,
                    "updated_at": 1,
                    "created_at": 1,
                    "failure_reason": 1,
                    "batch_id": 1,
                    "pdf_file_id": 1,
                    "version": 1,
                },
            )
            .sort([("created_at", DESCENDING), ("_id", ASCENDING)])
            .skip((page - 1) * size)
            .limit(size + 1)
        )
        rows = await cursor.to_list()
        return rows[:size], len(rows) > size

    async def count_stuck(self) -> int:
        return await self._reports.count_documents(report_status.stuck_query(utcnow()))

    async def get(self, report_id: str) -> ReportDocument | None:
        return await self._reports.find_one({"_id": report_id})

    async def waiting(self, batch_id: str | None = None, limit: int = 500) -> list[ReportDocument]:
        """Reports waiting for a person or a hold's end, oldest first (the release queue)."""
        query: dict[str, Any] = {"status": {"$in": [s.value for s in WAITING]}}
        if batch_id:
            query["batch_id"] = batch_id
        cursor = (
            self._reports.find(
                query,
                {"access": 0, "history": 0},
            )
            .sort([("updated_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return await cursor.to_list()

    async def versions(self, report: ReportDocument) -> list[ReportDocument]:
        """Every version of the report's source (same lab and source key), oldest first."""
        cursor = self._reports.find(
            {"lab_id": report["lab_id"], "source_key": report["source_key"]},
            {"access": 0, "history": 0, "results": 0},
        ).sort("version", ASCENDING)
        return await cursor.to_list()

    async def detail(self, report_id: str) -> ReportDocument | None:
        """A report for the admin report page, without its link token's hashes or PIN hash
        (its `access` keeps the second check it asks and the attempts)."""
        hidden = {"access.token_hash": 0, "access.reminder_token_hash": 0, "pin_hash": 0}
        return await self._reports.find_one({"_id": report_id}, hidden)


class NotificationQueries:
    # What the report page shows; nothing else (never the SMS body or its link) is read.
    FIELDS = (
        "version",
        "purpose",
        "status",
        "provider",
        "provider_message_id",
        "attempts",
        "error",
        "created_at",
        "updated_at",
        "sent_at",
        "delivered_at",
    )

    def __init__(self, db: Database) -> None:
        self._notifications = documents.notifications(db)

    async def for_report(self, report_id: str) -> list[NotificationDocument]:
        cursor = self._notifications.find(
            {"report_id": report_id}, dict.fromkeys(self.FIELDS, 1)
        ).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return await cursor.to_list()


class OutboxQueries:
    def __init__(self, db: Database) -> None:
        self._outbox = documents.outbox(db)

    async def recent(self, limit: int = 200) -> list[OutboxMessage]:
        cursor = self._outbox.find().sort("sent_at", DESCENDING).limit(limit)
        return await cursor.to_list()
