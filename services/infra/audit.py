"""The owner of the `audit` collection (append-only, hash-chained): who saw or changed what,
when, from where, and how it ended.

Every entry takes the next `seq` and chains to the entry before it (`audit_chain`). Any
number of writers (gateway replicas, notify, ingest, the CLI) append at once: each reads the
newest entry and inserts the next `seq`; the unique index on `seq` lets exactly one writer
have each place, and the others read again and retry.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from contracts.v1 import utcnow
from services.infra import documents
from services.infra.audit_chain import GENESIS, ChainBreak, ChainCheck, entry_hash, to_millisecond
from services.infra.audit_search import PAGE_SIZE, AuditFilter
from services.infra.database import Database
from services.infra.documents import AuditOutcome, AuditRecord

PATIENT = "patient"
SYSTEM = "system"  # a service acting on its own (an SMS sent, a correction arriving)
APPEND_TRIES = 100  # writers racing for the next place; each try loses to one other writer
NEWEST_FIRST = [("at", DESCENDING), ("seq", DESCENDING), ("_id", DESCENDING)]


def staff(username: str) -> str:
    """The actor recorded for a member of lab staff."""
    return f"admin:{username}"


def role_for(actor: str) -> str:
    """The role recorded when the writer does not know a better one."""
    if actor in (PATIENT, SYSTEM):
        return actor
    if actor.startswith("cli:"):
        return "operator"  # someone with the system's command line
    return "staff" if actor.startswith("admin:") else ""


@dataclass(frozen=True)
class ChainReport:
    """What `Audit.verify` found: the first break (None: intact) and what it covered."""

    broken: ChainBreak | None
    checked: int  # chained entries that held
    head_hash: str  # the hash of the newest entry that held
    unchained: int  # entries from before the chain began


class Audit:
    def __init__(self, db: Database) -> None:
        self._collection = documents.audit(db)

    async def write(
        self,
        actor: str,
        action: str,
        report_id: str | None,
        detail: Mapping[str, Any],
        *,
        role: str | None = None,
        outcome: str = AuditOutcome.SUCCESS,
        object: str | None = None,
        client: str | None = None,
    ) -> AuditRecord:
        """Append one entry. `detail` may hold what `web.client_detail` gives: its
        `actor_role` (taken out) and `ip` stand in for `role` and `client` when those are not
        given. `object` defaults to the report."""
        detail = dict(detail)
        given_role = detail.pop("actor_role", None)
        record: dict[str, Any] = {
            "actor": actor,
            "role": str(role or given_role or role_for(actor)),
            "action": action,
            "object": object if object is not None else report_id,
            "report_id": report_id,
            "outcome": AuditOutcome(outcome).value,
            "client": str(client if client is not None else detail.get("ip") or ""),
            "detail": detail,
        }
        for attempt in range(APPEND_TRIES):
            newest = await self._collection.find_one(
                {"seq": {"$exists": True}}, {"seq": 1, "hash": 1}, sort=[("seq", DESCENDING)]
            )
            entry = {
                **record,
                "at": to_millisecond(utcnow()),
                "seq": newest["seq"] + 1 if newest else 1,
                "prev_hash": newest["hash"] if newest else GENESIS,
            }
            entry["hash"] = entry_hash(entry)
            try:
                await self._collection.insert_one(entry)  # type: ignore[arg-type]
            except DuplicateKeyError:
                # Another writer took this place: read the newest entry again.
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
                continue
            return entry  # type: ignore[return-value]
        raise RuntimeError(f"could not append to the audit trail in {APPEND_TRIES} tries")

    async def verify(self) -> ChainReport:
        """Walk the chain oldest first; the first broken entry, or None when intact."""
        check = ChainCheck()
        broken: ChainBreak | None = None
        first_at = None
        cursor = self._collection.find({"seq": {"$exists": True}}).sort("seq", ASCENDING)
        async for entry in cursor:
            first_at = first_at or entry.get("at")
            broken = check.feed(entry)
            if broken is not None:
                break
        await cursor.close()
        unchained_query: dict[str, Any] = {"seq": {"$exists": False}}
        if broken is None and first_at is not None:
            # An entry made after the chain began without a place in it: its seq was taken.
            stray = await self._collection.find_one(
                {**unchained_query, "at": {"$gte": first_at}}, sort=[("at", ASCENDING)]
            )
            if stray is not None:
                why = "it has no seq but is newer than the chain's start (seq removed?)"
                broken = ChainBreak(None, stray.get("at"), stray.get("action", ""), why)
        unchained = await self._collection.count_documents(unchained_query)
        return ChainReport(broken, check.checked, check.head_hash, unchained)

    async def page(self, filters: AuditFilter, page: int) -> tuple[list[AuditRecord], bool]:
        """One page of matching entries, newest first, and whether there is a next page."""
        cursor = (
            self._collection.find(filters.mongo())
            .sort(NEWEST_FIRST)
            .skip((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE + 1)
        )
        rows = await cursor.to_list()
        return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE

    async def matching(self, filters: AuditFilter) -> AsyncGenerator[AuditRecord, None]:
        """Every matching entry, newest first (an export), read as it is written out."""
        cursor = self._collection.find(filters.mongo()).sort(NEWEST_FIRST)
        try:
            async for entry in cursor:
                yield entry
        finally:
            await cursor.close()

    async def exists(self, action: str, report_id: str) -> bool:
        """Whether the report has an entry for this action (a redelivered event's check)."""
        return (
            await self._collection.find_one({"report_id": report_id, "action": action}) is not None
        )

    async def portal_events(self, report_id: str, limit: int) -> tuple[list[AuditRecord], bool]:
        """The patient's portal activity on a report: see `_latest`."""
        return await self._latest({"report_id": report_id, "actor": PATIENT}, limit)

    async def staff_events(self, report_id: str, limit: int) -> tuple[list[AuditRecord], bool]:
        """Lab staff's access to a report (page opened, PDF viewed): see `_latest`."""
        query = {"report_id": report_id, "actor": {"$nin": [PATIENT, SYSTEM]}}
        return await self._latest(query, limit)

    async def _latest(self, query: dict[str, Any], limit: int) -> tuple[list[AuditRecord], bool]:
        """The latest `limit` matching records, oldest first, and whether older ones exist."""
        cursor = (
            self._collection.find(
                query, {"at": 1, "actor": 1, "action": 1, "detail": 1, "client": 1}
            )
            .sort([("at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit + 1)
        )
        records = await cursor.to_list()
        return records[:limit][::-1], len(records) > limit
