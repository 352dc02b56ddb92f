"""The owner of `dead_letters`: every message RabbitMQ dead-lettered, kept where staff see it.

The gateway drains each `<queue>.dlq` into this collection (`gateway.dead_letter_keeper`):
a dead-lettered message is stored, then acknowledged, so it is never only in a queue nobody
opens. Staff replay it (back to its queue, under its routing key) or discard it with a
reason; each is one conditional update, so two clicks replay once.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any, NotRequired, TypedDict, cast

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from contracts import topology
from contracts.v1 import utcnow
from services.infra.database import Database


class DeadLetterState(StrEnum):
    DEAD = "dead"  # waiting for a person
    REPLAYED = "replayed"
    DISCARDED = "discarded"


class DeadLetterDocument(TypedDict):
    """`dead_letters`: a message RabbitMQ dead-lettered, as the gateway drained it."""

    _id: str
    queue: str  # the queue it failed in
    routing_key: str  # where a replay sends it
    body: str
    headers: dict[str, Any]
    reason: str
    deaths: int
    first_failed_at: datetime
    last_failed_at: datetime
    report_id: str | None
    batch_id: str | None
    correlation_id: str | None
    message_id: str | None
    state: DeadLetterState
    kept_at: datetime
    decided_by: NotRequired[str]
    decided_at: NotRequired[datetime]
    decision: NotRequired[str]  # a discard's reason


def dead_letters(db: Database) -> AsyncCollection[DeadLetterDocument]:
    return cast("AsyncCollection[DeadLetterDocument]", db.dead_letters)


PAGE_SIZE = 50
# Headers RabbitMQ or we add on the way to a dead-letter queue; a replay leaves them behind.
DEATH_HEADERS = frozenset({"x-death", "x-rejection-reason", "x-delivery-count"}) | {
    f"x-{which}-death-{what}"
    for which in ("first", "last")
    for what in ("reason", "queue", "exchange")
}


def source_queue(dead_letter_queue: str) -> topology.Queue | None:
    """The queue a dead-letter queue holds the failures of."""
    return topology.queue_named(dead_letter_queue.removesuffix(".dlq"))


def dead_letter_from(
    dead_letter_queue: str,
    body: bytes,
    headers: dict[str, Any],
    message_id: str | None,
    correlation_id: str | None,
    now: datetime,
) -> DeadLetterDocument:
    """What is kept of one dead-lettered message (pure): why, since when, and for what."""
    queue = source_queue(dead_letter_queue)
    deaths = [d for d in headers.get("x-death") or [] if isinstance(d, dict)]
    count = sum(int(d.get("count", 1)) for d in deaths) or 1
    times = [d["time"] for d in deaths if isinstance(d.get("time"), datetime)]
    reason = headers.get("x-rejection-reason") or headers.get("x-first-death-reason")
    if not reason and deaths:
        reason = str(deaths[0].get("reason", ""))
    reason = {
        "rejected": "a service gave up on it (the report or batch says why)",
        "delivery_limit": f"delivered {topology.DELIVERY_LIMIT} times without success",
        "expired": "it expired in the queue",
        "maxlen": "the queue was full",
    }.get(str(reason), str(reason or "unknown"))
    try:
        fields = json.loads(body)
    except ValueError:
        fields = {}
    fields = fields if isinstance(fields, dict) else {}
    # One document per death of one message: redelivered from the queue, it is kept once;
    # replayed and failing again, it is a new death (kept again, waiting for a person).
    identity = f"{dead_letter_queue}|{message_id or hashlib.sha256(body).hexdigest()}|{count}"
    if replayed := headers.get("x-replayed-from"):
        identity += f"|{replayed}"
    return {
        "_id": hashlib.sha256(identity.encode()).hexdigest()[:24],
        "queue": queue.name if queue else dead_letter_queue,
        "routing_key": queue.routing_key if queue else "",
        "body": body.decode("utf-8", errors="replace"),
        "headers": {k: _plain(v) for k, v in headers.items() if k not in DEATH_HEADERS},
        "reason": reason[:1000],
        "deaths": count,
        "first_failed_at": min(times, default=now),
        "last_failed_at": max(times, default=now),
        "report_id": _text(fields.get("report_id")),
        "batch_id": _text(fields.get("batch_id")),
        "correlation_id": correlation_id or _text(fields.get("correlation_id")),
        "message_id": message_id,
        "state": DeadLetterState.DEAD,
        "kept_at": now,
    }


def replay_headers(letter: DeadLetterDocument) -> dict[str, Any]:
    return {**letter["headers"], "x-replayed-from": letter["_id"]}


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) else None


def _plain(value: Any) -> Any:
    """A header value MongoDB can store as it is."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str | int | float | bool | datetime) or value is None:
        return value
    return str(value)


class DeadLetters:
    def __init__(self, db: Database) -> None:
        self._collection = dead_letters(db)
        self._db = db

    async def keep(self, letter: DeadLetterDocument) -> None:
        """Store a dead letter once, however often RabbitMQ delivers it to us."""
        await self._collection.update_one(
            {"_id": letter["_id"]}, {"$setOnInsert": letter}, upsert=True
        )

    async def get(self, letter_id: str) -> DeadLetterDocument | None:
        return await self._collection.find_one({"_id": letter_id})

    async def page(
        self, queue: str | None, state: str, page: int
    ) -> tuple[list[DeadLetterDocument], bool]:
        query: dict[str, Any] = {"state": state}
        if queue:
            query["queue"] = queue
        cursor = (
            self._collection.find(query, {"body": 0})
            .sort([("last_failed_at", DESCENDING), ("_id", DESCENDING)])
            .skip((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE + 1)
        )
        rows = await cursor.to_list()
        return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE

    async def waiting_ids(self, queue: str | None) -> list[str]:
        query: dict[str, Any] = {"state": DeadLetterState.DEAD}
        if queue:
            query["queue"] = queue
        return [row["_id"] async for row in self._collection.find(query, {"_id": 1})]

    async def counts(self) -> dict[str, int]:
        """Dead letters waiting for a decision, per queue."""
        cursor = await self._db.dead_letters.aggregate(
            [
                {"$match": {"state": DeadLetterState.DEAD}},
                {"$group": {"_id": "$queue", "n": {"$sum": 1}}},
            ]
        )
        return {str(row["_id"]): int(row["n"]) async for row in cursor}

    async def claim(
        self, letter_id: str, state: DeadLetterState, by: str, reason: str = ""
    ) -> DeadLetterDocument | None:
        """Move a waiting dead letter to `state` (replayed, discarded); None when it was
        not waiting (already decided, or unknown)."""
        return await self._collection.find_one_and_update(
            {"_id": letter_id, "state": DeadLetterState.DEAD},
            {
                "$set": {
                    "state": state,
                    "decided_by": by,
                    "decided_at": utcnow(),
                    "decision": reason,
                }
            },
        )

    async def unclaim(self, letter_id: str) -> None:
        """A replay whose publish failed waits again."""
        await self._collection.update_one(
            {"_id": letter_id, "state": DeadLetterState.REPLAYED},
            {
                "$set": {"state": DeadLetterState.DEAD},
                "$unset": {"decided_by": "", "decided_at": ""},
            },
        )
