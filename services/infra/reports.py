"""The owner of the `reports` collection: every write to it is a method here.

Each status change is one conditional update (`status` must be one from which the target
may be reached), so a duplicate message changes nothing; each change that happened is
announced as `ReportStatusChanged`, stored with the change (`services.infra.outbox`). The
patient link (`access`) is written here too: notify issues it, the portal counts and locks
its date-of-birth checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from faststream.rabbit import RabbitBroker
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from contracts.v1 import Message, ReportStatus, ReportStatusChanged, utcnow
from services.infra import documents, report_status
from services.infra.database import Database
from services.infra.documents import AccessDocument, ReportDocument
from services.infra.errors import ReportNotFoundError
from services.infra.metrics import observe_stage
from services.infra.outbox import Outbox
from services.infra.report_status import sources_of
from services.infra.tokens import looks_like_token, token_hash

if TYPE_CHECKING:
    from pymongo.asynchronous.client_session import AsyncClientSession

log = structlog.get_logger()


class Reports:
    def __init__(self, db: Database, broker: RabbitBroker) -> None:
        self._collection = documents.reports(db)
        self._outbox = Outbox(db, broker)

    async def get(self, report_id: str) -> ReportDocument:
        report = await self._collection.find_one({"_id": report_id})
        if report is None:
            raise ReportNotFoundError(report_id)
        return report

    async def create(self, report: ReportDocument) -> ReportDocument:
        """Insert a new report, or return the one that already holds its unique key (lab,
        source key, version): the key, not a lookup, is what makes a re-ingest create nothing."""
        try:
            await self._collection.insert_one(report)
            return report
        except DuplicateKeyError:
            key = {
                "lab_id": report["lab_id"],
                "source_key": report["source_key"],
                "version": report["version"],
            }
            existing = await self._collection.find_one(key)
            if existing is None:  # pragma: no cover - the key existed a moment ago
                raise
            return existing

    async def latest(self, lab_id: str, source_key: str) -> ReportDocument | None:
        """The newest version of a source (a sheet's patient and sample, an LIS accession)."""
        return await self._collection.find_one(
            {"lab_id": lab_id, "source_key": source_key}, sort=[("version", -1)]
        )

    async def versions(self, report: ReportDocument) -> list[ReportDocument]:
        """Every version of the report's source, oldest first."""
        cursor = self._collection.find(
            {"lab_id": report["lab_id"], "source_key": report["source_key"]}
        ).sort("version", 1)
        return await cursor.to_list()

    async def supersede_older(self, report: ReportDocument) -> int:
        """Mark every older version of `report` superseded by it (their links then say so);
        idempotent, so a redelivery finishes what a crash interrupted. How many moved."""
        moved = 0
        if report["version"] <= 1:
            return moved  # nothing older: no lookup on the common path
        for older in await self.versions(report):
            if older["version"] >= report["version"]:
                continue
            if await self.advance(
                older,
                ReportStatus.SUPERSEDED,
                fields={"superseded_by": report["_id"]},
                reason=f"replaced by version {report['version']}",
            ):
                moved += 1
        return moved

    async def advance(
        self,
        report: ReportDocument,
        to: ReportStatus,
        *,
        fields: dict[str, Any] | None = None,
        reason: str = "",
        where: dict[str, Any] | None = None,
        then: Sequence[Message] = (),
        crash_at: str = "",
    ) -> bool:
        """Move `report` to `to` if its current status allows it (and it still matches
        `where`); False when it did not. The change, its `ReportStatusChanged` and the next
        stage's commands (`then`) are stored in one transaction (`services.infra.outbox`)."""

        async def change(session: AsyncClientSession) -> tuple[bool, list[Message]]:
            now = utcnow()
            before = await self._collection.find_one_and_update(
                {
                    "_id": report["_id"],
                    "status": {"$in": [s.value for s in sources_of(to)]},
                    **(where or {}),
                },
                {
                    "$set": {"status": to.value, "updated_at": now, **(fields or {})},
                    "$push": {"history": {"status": to.value, "at": now, "reason": reason}},
                },
                projection={"status": 1},
                return_document=ReturnDocument.BEFORE,
                session=session,
            )
            if before is None:
                return False, []
            changed = ReportStatusChanged(
                correlation_id=report["correlation_id"],
                report_id=report["_id"],
                batch_id=report.get("batch_id"),
                lab_id=report["lab_id"],
                status=to,
                previous_status=ReportStatus(before["status"]),
                reason=reason,
            )
            return True, [changed, *then]

        moved = await self._outbox.commit(change, crash_at=crash_at)
        if moved:
            log.info("report.status_changed", report_id=report["_id"], status=to.value)
            observe_stage(to.value, report)
        return moved

    async def fail(self, report_id: str, reason: str) -> None:
        """Mark the report failed with a reason a lab user can act on."""
        report = await self._collection.find_one({"_id": report_id})
        if report is not None:
            await self.advance(
                report, ReportStatus.FAILED, fields={"failure_reason": reason}, reason=reason
            )

    # --- what the release scheduler looks for ---------------------------------------------

    async def due_holds(self, now: datetime, limit: int = 100) -> list[ReportDocument]:
        """Held reports whose hold has run out (timed holds only: a review waits for a person)."""
        cursor = self._collection.find(
            {"status": ReportStatus.HELD.value, "hold.until": {"$lte": now}}
        ).limit(limit)
        return await cursor.to_list()

    async def unsent_releases(self, before: datetime, limit: int = 100) -> list[ReportDocument]:
        """Released reports that have not moved since `before`: their NotifyPatient may have
        been lost between the release and its publish."""
        cursor = self._collection.find(
            {
                "status": ReportStatus.RELEASED.value,
                "updated_at": {"$lte": before},
                "$or": [{"redriven_at": None}, {"redriven_at": {"$lte": before}}],
                "sms_due": None,  # held by quiet hours: the quiet-hours loop sends it
            }
        ).limit(limit)
        return await cursor.to_list()

    async def claim_redrive(self, report: ReportDocument, now: datetime) -> bool:
        """Take the turn to send a report's stage command again (one replica wins): only
        while it is still where it was read, and not re-driven meanwhile."""
        result = await self._collection.update_one(
            {
                "_id": report["_id"],
                "status": report["status"],
                "redriven_at": report.get("redriven_at"),
            },
            {"$set": {"redriven_at": now}, "$inc": {"redrives": 1}},
        )
        return result.modified_count == 1

    async def stuck_to_redrive(
        self, now: datetime, statuses: frozenset[ReportStatus], most: int, limit: int = 100
    ) -> list[ReportDocument]:
        """Stuck reports (`report_status.stuck_query`) at `statuses` not re-driven within
        their stage's limit, and fewer than `most` times: past that a person decides."""
        wait = min(report_status.STUCK_AFTER.values())
        query = {
            "$and": [
                report_status.stuck_query(now),
                {"status": {"$in": [status.value for status in statuses]}},
                {"$or": [{"redriven_at": None}, {"redriven_at": {"$lte": now - wait}}]},
                {"$or": [{"redrives": None}, {"redrives": {"$lt": most}}]},
            ]
        }
        return await self._collection.find(query).limit(limit).to_list()

    # --- SMS held back by quiet hours (`sms_due`) ---------------------------------------

    async def defer_sms(
        self, report_id: str, due: datetime, now: datetime, request_id: str | None
    ) -> None:
        """Hold the report's SMS (or a staff request's) until `due`; held again, it keeps
        its first place in the queue."""
        await self._collection.update_one(
            {"_id": report_id},
            {
                "$set": {"sms_due.at": due},
                "$min": {"sms_due.since": now},
                "$addToSet": {"sms_due.requests": request_id or ""},
            },
        )

    async def due_sms(self, now: datetime, limit: int = 100) -> list[ReportDocument]:
        """Reports whose held SMS may go now, longest waiting first."""
        cursor = (
            self._collection.find({"sms_due.at": {"$lte": now}})
            .sort([("sms_due.since", 1), ("_id", 1)])
            .limit(limit)
        )
        return await cursor.to_list()

    async def claim_due_sms(self, report: ReportDocument, lease_until: datetime) -> bool:
        """Take the turn to send a held SMS (one replica wins); should this replica die,
        another takes it over at `lease_until` (the send-once record stops a second SMS)."""
        due = report["sms_due"]
        result = await self._collection.update_one(
            {"_id": report["_id"], "sms_due.at": due["at"]},
            {"$set": {"sms_due.at": lease_until}},
        )
        return result.modified_count == 1

    async def sms_sent_after_quiet(self, report_id: str, requests: list[str]) -> None:
        """The held sends are done: forget them (keeping any held meanwhile)."""
        done = await self._collection.update_one(
            {"_id": report_id, "sms_due.requests": {"$size": len(requests), "$all": requests}},
            {"$unset": {"sms_due": ""}},
        )
        if done.modified_count == 0:
            await self._collection.update_one(
                {"_id": report_id}, {"$pullAll": {"sms_due.requests": requests}}
            )
            await self._collection.update_one(
                {"_id": report_id, "sms_due.requests": {"$size": 0}}, {"$unset": {"sms_due": ""}}
            )

    async def set_phone(self, report_id: str, phone: str) -> None:
        """Staff corrected the patient's mobile number (E.164) for a new SMS."""
        await self._collection.update_one(
            {"_id": report_id}, {"$set": {"patient.phone": phone, "updated_at": utcnow()}}
        )

    # --- the patient's link (`access`) ---------------------------------------------------

    async def set_access(self, report_id: str, access: AccessDocument) -> None:
        """Store a new link's hash before its SMS leaves, so it works the moment it arrives;
        a new link (a retry after a refusal) replaces the unsent one."""
        await self._collection.update_one(
            {"_id": report_id}, {"$set": {"access": access, "updated_at": utcnow()}}
        )

    async def by_link_token(self, token: str) -> ReportDocument | None:
        """The report whose link (the first SMS's, or its reminder's) is `token`."""
        if not looks_like_token(token):
            return None
        hashed = token_hash(token)
        return await self._collection.find_one(
            {"$or": [{"access.token_hash": hashed}, {"access.reminder_token_hash": hashed}]}
        )

    # --- reminders: a link not opened shortly before it expires --------------------------

    async def due_reminders(
        self, now: datetime, remind_from: datetime, limit: int = 100
    ) -> list[ReportDocument]:
        """Texted reports whose unopened link expires between `now` and `remind_from`, and
        that have had no reminder."""
        cursor = self._collection.find(self._reminder_due(now, remind_from)).limit(limit)
        return await cursor.to_list()

    async def claim_reminder(
        self, report_id: str, now: datetime, remind_from: datetime, token_hash_: str
    ) -> bool:
        """Take the report's one reminder (one replica wins) and store the hash of the link
        it carries beside the first one: both open the report, with the same expiry."""
        result = await self._collection.update_one(
            {"_id": report_id, **self._reminder_due(now, remind_from)},
            {"$set": {"access.reminder_at": now, "access.reminder_token_hash": token_hash_}},
        )
        return result.modified_count == 1

    @staticmethod
    def _reminder_due(now: datetime, remind_from: datetime) -> dict[str, Any]:
        return {
            "status": {"$in": [ReportStatus.NOTIFIED.value, ReportStatus.DELIVERED.value]},
            "access.expires_at": {"$gt": now, "$lte": remind_from},
            "access.opened_at": None,
            "access.reminder_at": None,
            "access.locked": {"$ne": True},
        }

    async def take_check_attempt(self, report_id: str, max_attempts: int) -> int | None:
        """Count one second-factor check before it is compared; None (nothing counted) when the
        link is locked or has no attempt left. Returns the count, this one included.

        Counting first, in one atomic update, is what keeps parallel guesses from all being
        compared while the count still looks low: at most `max_attempts` ever are.
        """
        report = await self._collection.find_one_and_update(
            {
                "_id": report_id,
                "access.locked": {"$ne": True},
                "access.failed_attempts": {"$lt": max_attempts},
            },
            {"$inc": {"access.failed_attempts": 1}},
            projection={"access.failed_attempts": 1},
            return_document=ReturnDocument.AFTER,
        )
        return None if report is None else int(report["access"]["failed_attempts"])

    async def mark_opened(self, report_id: str, now: datetime) -> None:
        """The patient saw the report (first time kept): no reminder is due any more."""
        await self._collection.update_one(
            {"_id": report_id, "access.opened_at": None}, {"$set": {"access.opened_at": now}}
        )

    async def lock_link(self, report_id: str) -> None:
        await self._collection.update_one({"_id": report_id}, {"$set": {"access.locked": True}})

    async def clear_failed_checks(self, report_id: str) -> None:
        await self._collection.update_one(
            {"_id": report_id, "access.locked": {"$ne": True}},
            {"$set": {"access.failed_attempts": 0}},
        )
