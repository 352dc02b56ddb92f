"""The gateway's persistence: users, admin sessions, login lockouts, portal sessions, audit,
batches and the report queries behind the admin pages and the patient portal."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from contracts.v1 import ReportStatus, utcnow
from services.gateway import logic
from services.infra.database import Database
from services.infra.tokens import new_token, token_hash

# argon2-cffi's default type is argon2id.
_hasher = PasswordHasher()
# Verified against when the username is unknown, so both cases take as long.
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


class UserError(ValueError):
    """A user cannot be created as asked; the text says why."""


async def create_user(db: Database, username: str, password: str) -> None:
    """Create an admin user with an argon2id password hash (used by `resultflow users create`)."""
    if problem := logic.username_problem(username):
        raise UserError(problem)
    if problem := logic.password_problem(password):
        raise UserError(problem)
    password_hash = await asyncio.to_thread(_hasher.hash, password)
    try:
        await db.users.insert_one(
            {
                "username": username,
                "password_hash": password_hash,
                "role": "admin",
                "created_at": utcnow(),
            }
        )
    except DuplicateKeyError:
        raise UserError(f"User {username!r} already exists.") from None


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class Users:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def take_attempt(self, username: str, now: datetime) -> bool:
        """Count one login attempt for `username` before its password is checked; False
        (nothing counted) when the username is locked.

        Counting first, in one atomic update, is what keeps parallel guesses from all being
        checked while the count still looks low. The attempt that reaches the limit locks the
        username at once: its password is still checked, and a right one clears the lock.
        """
        with contextlib.suppress(DuplicateKeyError):  # a parallel attempt created it first
            await self._db.login_failures.update_one(
                {"_id": username}, {"$setOnInsert": {"failures": 0}}, upsert=True
            )
        unlocked = {"$or": [{"locked_until": None}, {"locked_until": {"$lte": now}}]}
        counted = await self._db.login_failures.find_one_and_update(
            {"_id": username, "failures": {"$lt": logic.LOGIN_MAX_FAILURES - 1}, **unlocked},
            {"$inc": {"failures": 1}, "$set": {"last_failure_at": now}},
        )
        if counted is not None:
            return True
        locked = await self._db.login_failures.find_one_and_update(
            {"_id": username, "failures": {"$gte": logic.LOGIN_MAX_FAILURES - 1}, **unlocked},
            {
                "$set": {
                    "failures": 0,
                    "last_failure_at": now,
                    "locked_until": logic.lock_after_failure(logic.LOGIN_MAX_FAILURES, now),
                }
            },
        )
        return locked is not None

    async def check_password(self, username: str, password: str) -> bool:
        user = await self._db.users.find_one({"username": username})
        password_hash = user["password_hash"] if user else _DUMMY_HASH
        # argon2 is deliberately slow (tens of ms): keep it off the event loop.
        ok = await asyncio.to_thread(_verify, password_hash, password)
        return ok and user is not None

    async def clear_failures(self, username: str) -> None:
        await self._db.login_failures.delete_one({"_id": username})


class Sessions:
    """Admin sessions: the cookie holds a random token, the database only its SHA-256."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, username: str, now: datetime) -> str:
        token = new_token()
        await self._db.sessions.insert_one(
            {
                "token_hash": token_hash(token),
                "username": username,
                "csrf_token": new_token(),
                "created_at": now,
                "expires_at": now + logic.ADMIN_SESSION_TTL,
            }
        )
        return token

    async def get(self, token: str, now: datetime) -> dict[str, Any] | None:
        return await self._db.sessions.find_one(
            {"token_hash": token_hash(token), "expires_at": {"$gt": now}}
        )

    async def delete(self, token: str) -> None:
        await self._db.sessions.delete_one({"token_hash": token_hash(token)})


class PortalSessions:
    """A patient's short session after the date-of-birth check, bound to one report."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, report_id: str, now: datetime) -> str:
        token = new_token()
        await self._db.portal_sessions.insert_one(
            {
                "token_hash": token_hash(token),
                "report_id": report_id,
                "created_at": now,
                "expires_at": now + logic.PORTAL_SESSION_TTL,
            }
        )
        return token

    async def valid(self, token: str, report_id: str, now: datetime) -> bool:
        found = await self._db.portal_sessions.find_one(
            {
                "token_hash": token_hash(token),
                "report_id": report_id,
                "expires_at": {"$gt": now},
            }
        )
        return found is not None


class Audit:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(
        self, actor: str, action: str, report_id: str | None, detail: dict[str, Any]
    ) -> None:
        await self._db.audit.insert_one(
            {
                "at": utcnow(),
                "actor": actor,
                "action": action,
                "report_id": report_id,
                "detail": detail,
            }
        )

    async def portal_events(self, report_id: str) -> tuple[list[dict[str, Any]], bool]:
        """The patient's portal activity on a report: see `_latest`."""
        return await self._latest({"report_id": report_id, "actor": "patient"})

    async def staff_events(self, report_id: str) -> tuple[list[dict[str, Any]], bool]:
        """Lab staff's access to a report (page opened, PDF viewed): see `_latest`."""
        return await self._latest({"report_id": report_id, "actor": {"$ne": "patient"}})

    async def _latest(
        self, query: dict[str, Any], limit: int = logic.REPORT_AUDIT_LIMIT
    ) -> tuple[list[dict[str, Any]], bool]:
        """The latest `limit` matching records, oldest first, and whether older ones exist."""
        cursor = (
            self._db.audit.find(query, {"at": 1, "actor": 1, "action": 1, "detail": 1})
            .sort([("at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
        )
        records = await cursor.to_list()
        return records[:limit][::-1], len(records) > limit


class Batches:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, *, lab_id: str, filename: str, file_id: str, uploaded_by: str
    ) -> dict[str, Any]:
        batch: dict[str, Any] = {
            "_id": uuid.uuid4().hex,
            "lab_id": lab_id,
            "filename": filename,
            "file_id": file_id,
            "uploaded_by": uploaded_by,
            "uploaded_at": utcnow(),
            "correlation_id": uuid.uuid4().hex,
            "status": "received",
            "rows_total": 0,
            "rows_accepted": 0,
            "rejected_rows": [],
            "reports_created": 0,
            "duplicates": 0,
            "failure_reason": "",
        }
        await self._db.batches.insert_one(batch)
        return batch

    async def fail(self, batch_id: str, reason: str) -> None:
        await self._db.batches.update_one(
            {"_id": batch_id, "status": "received"},
            {"$set": {"status": "failed", "failure_reason": reason}},
        )

    async def get(self, batch_id: str) -> dict[str, Any] | None:
        return await self._db.batches.find_one({"_id": batch_id})

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        cursor = self._db.batches.find().sort("uploaded_at", DESCENDING).limit(limit)
        return await cursor.to_list()

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

    async def failed_reports(self, batch_id: str, limit: int = 500) -> list[dict[str, Any]]:
        cursor = (
            self._db.reports.find(
                {"batch_id": batch_id, "status": ReportStatus.FAILED.value},
                {"patient.patient_id": 1, "failure_reason": 1, "source": 1, "updated_at": 1},
            )
            .sort("updated_at", DESCENDING)
            .limit(limit)
        )
        return await cursor.to_list()


class ReportQueries:
    """Reads and the portal's writes on `reports`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(
        self, *, batch_id: str | None, status: str | None, page: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of reports (newest first) and whether there is a next page."""
        query: dict[str, Any] = {}
        if batch_id:
            query["batch_id"] = batch_id
        if status:
            query["status"] = status
        size = logic.REPORTS_PAGE_SIZE
        cursor = (
            self._db.reports.find(
                query,
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
                },
            )
            .sort([("created_at", DESCENDING), ("_id", ASCENDING)])
            .skip((page - 1) * size)
            .limit(size + 1)
        )
        rows = await cursor.to_list()
        return rows[:size], len(rows) > size

    async def get(self, report_id: str) -> dict[str, Any] | None:
        return await self._db.reports.find_one({"_id": report_id})

    async def detail(self, report_id: str) -> dict[str, Any] | None:
        """A report for the admin report page, without its `access` (the link token's hash)."""
        return await self._db.reports.find_one({"_id": report_id}, {"access": 0})

    async def by_link_token(self, token: str) -> dict[str, Any] | None:
        if not logic.looks_like_token(token):
            return None
        return await self._db.reports.find_one({"access.token_hash": token_hash(token)})

    async def take_check_attempt(self, report_id: str, max_attempts: int) -> int | None:
        """Count one date-of-birth check before the date is compared; None (nothing counted)
        when the link is locked or has no attempt left. Returns the count, this one included.

        Counting first, in one atomic update, is what keeps parallel guesses from all being
        compared while the count still looks low: at most `max_attempts` ever are.
        """
        report = await self._db.reports.find_one_and_update(
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

    async def lock_link(self, report_id: str) -> None:
        await self._db.reports.update_one({"_id": report_id}, {"$set": {"access.locked": True}})

    async def clear_failed_checks(self, report_id: str) -> None:
        await self._db.reports.update_one(
            {"_id": report_id, "access.locked": {"$ne": True}},
            {"$set": {"access.failed_attempts": 0}},
        )


class NotificationQueries:
    """Reads of `notifications` for the admin pages (the notify service writes them)."""

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
        "sent_at",
        "delivered_at",
    )

    def __init__(self, db: Database) -> None:
        self._db = db

    async def for_report(self, report_id: str) -> list[dict[str, Any]]:
        cursor = self._db.notifications.find(
            {"report_id": report_id}, dict.fromkeys(self.FIELDS, 1)
        ).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return await cursor.to_list()


class Stats:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _group(self, collection: str, field: str, match: dict[str, Any]) -> dict[str, int]:
        cursor = await self._db[collection].aggregate(
            [{"$match": match}, {"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
        )
        return {str(row["_id"]): int(row["n"]) async for row in cursor}

    async def reports_by_status(self) -> dict[str, int]:
        return await self._group("reports", "status", {})

    async def batches_by_status(self) -> dict[str, int]:
        return await self._group("batches", "status", {})

    async def portal_events(self) -> dict[str, int]:
        return await self._group("audit", "action", {"actor": "patient"})


class Outbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def recent(self, limit: int = 200) -> list[dict[str, Any]]:
        cursor = self._db.outbox.find().sort("sent_at", DESCENDING).limit(limit)
        return await cursor.to_list()
