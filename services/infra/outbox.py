"""The owner of the `message_outbox` collection: the transactional outbox every "store, then
publish" goes through (not the `outbox` collection, which is the development SMS provider's).

`Outbox.commit(write)` runs `write` (the state change: a report's status, a new batch) and
stores the messages it announces in one MongoDB transaction: either both happen or neither.
Right after the commit this process publishes them (persistent, mandatory, confirmed) and
deletes their rows: the low-latency path. Should it die or the broker refuse between the
commit and the confirm, the rows stay, and a relay (`Outbox.relay`, a `Periodic` loop in
every service process) publishes them once their claim has expired. Rows are claimed with
one conditional update each, so replicas never publish the same row at once; a claim runs
out after `CLAIM_SECONDS`, so a crashed relay's rows are taken over. A message may therefore
go out twice (a crash after the confirm, before the delete): consumers are idempotent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypedDict, TypeVar, cast

import structlog
from faststream.rabbit import RabbitBroker
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import OperationFailure

from contracts.v1 import Message, utcnow
from services.infra.broker import EXCHANGE
from services.infra.crash_points import crash_point
from services.infra.database import Database
from services.infra.errors import ContendedError
from services.infra.metrics import OUTBOX_PUBLISH_FAILURES

if TYPE_CHECKING:
    from pymongo.asynchronous.client_session import AsyncClientSession
    from pymongo.asynchronous.collection import AsyncCollection

log = structlog.get_logger()

T = TypeVar("T")
Write = Callable[["AsyncClientSession"], Awaitable[tuple[T, Sequence[Message]]]]

CLAIM_SECONDS = 5.0  # a relay (or the writer) that has not published by then has died
RELAY_EVERY_SECONDS = 2.0
RELAY_BATCH = 100
# How long a change retries a write conflict before giving its message back (`ContendedError`):
# a transaction a killed process left open holds its documents until the server aborts it.
CONTENDED_SECONDS = 5.0
WRITE_CONFLICT = 112  # MongoDB's error code: a document another transaction has changed


class OutboxEntry(TypedDict):
    """`message_outbox`: one message stored with the change it announces, not yet confirmed
    by RabbitMQ. The body is the contract's JSON (ids only, never patient data)."""

    _id: str
    routing_key: str
    body: str
    correlation_id: str
    created_at: datetime
    claimed_until: datetime  # nobody else publishes it before then
    attempts: int


def message_outbox(db: Database) -> AsyncCollection[OutboxEntry]:
    return cast("AsyncCollection[OutboxEntry]", db.message_outbox)


def entry(message: Message, now: datetime, claim_seconds: float = CLAIM_SECONDS) -> OutboxEntry:
    """A row its writer holds the claim on for `claim_seconds`: the writer publishes it."""
    return {
        "_id": uuid.uuid4().hex,
        "routing_key": message.routing_key,
        "body": message.model_dump_json(),
        "correlation_id": message.correlation_id,
        "created_at": now,
        "claimed_until": now + timedelta(seconds=claim_seconds),
        "attempts": 0,
    }


class Outbox:
    def __init__(
        self, db: Database, broker: RabbitBroker, claim_seconds: float = CLAIM_SECONDS
    ) -> None:
        self._db = db
        self._collection = message_outbox(db)
        self._broker = broker
        self._claim = timedelta(seconds=claim_seconds)

    async def commit(
        self, write: Write[T], *, crash_at: str = "", publish_wait: float | None = None
    ) -> T:
        """Run `write` and store the messages it returns in one transaction (retried whole
        on a transient conflict, for `CONTENDED_SECONDS`: then `ContendedError`), then
        publish them. Returns what `write` returned.

        `crash_at` names the fault tests' crash point between the commit and the publish;
        `publish_wait` bounds the publish (a broker alarm blocks it): then the relay sends."""
        rows: list[OutboxEntry] = []
        started, conflicted = time.monotonic(), False

        async def transaction(session: AsyncClientSession) -> T:
            nonlocal conflicted
            if conflicted and time.monotonic() - started > CONTENDED_SECONDS:
                raise ContendedError(f"write conflicts for {CONTENDED_SECONDS:.0f} s")
            try:
                result, messages = await write(session)
            except OperationFailure as error:
                conflicted = error.code == WRITE_CONFLICT  # retried by `with_transaction`
                raise
            now = utcnow()
            claim = self._claim.total_seconds()
            rows[:] = [entry(message, now, claim) for message in messages]
            if rows:
                await self._collection.insert_many(rows, session=session)
            return result

        async with self._db.client.start_session() as session:
            result = await session.with_transaction(transaction)
        if crash_at:
            crash_point(crash_at)
        try:
            await asyncio.wait_for(self.send(rows), publish_wait)
        except TimeoutError:
            OUTBOX_PUBLISH_FAILURES.labels("writer").inc()
            log.warning("outbox.publish_deferred", messages=len(rows), error="TimeoutError")
        return result

    async def send(self, rows: Sequence[OutboxEntry]) -> None:
        """Publish rows this process holds the claim on, in order; what fails stays for the
        relay (the change is committed: the message will follow)."""
        for row in rows:
            try:
                await self._publish(row)
            except Exception as error:
                OUTBOX_PUBLISH_FAILURES.labels("writer").inc()
                log.warning(
                    "outbox.publish_deferred",
                    routing_key=row["routing_key"],
                    error=type(error).__name__,
                )
                return  # keep the order: the relay sends the rest after this one

    async def relay(self) -> int:
        """One pass of the relay: claim and publish every row whose claim has run out (its
        writer died or could not publish). How many went out."""
        sent = 0
        for _ in range(RELAY_BATCH):
            now = utcnow()
            row = await self._collection.find_one_and_update(
                {"claimed_until": {"$lte": now}},
                {
                    "$set": {"claimed_until": now + self._claim},
                    "$inc": {"attempts": 1},
                },
                sort=[("created_at", ASCENDING)],
                return_document=ReturnDocument.AFTER,
            )
            if row is None:
                break
            try:
                await self._publish(row)
            except Exception:
                OUTBOX_PUBLISH_FAILURES.labels("relay").inc()
                raise  # the row stays, claimed: tried again once its claim runs out
            sent += 1
        if sent:
            log.info("outbox.relayed", messages=sent)
        return sent

    async def pending(self) -> int:
        """Rows not yet confirmed (a health figure: it should stay near 0)."""
        return await self._collection.count_documents({})

    async def _publish(self, row: OutboxEntry) -> None:
        # What `broker.publish` does for a contract, from the stored JSON.
        await self._broker.publish(
            row["body"],
            exchange=EXCHANGE,
            routing_key=row["routing_key"],
            persist=True,
            mandatory=True,
            message_type=row["routing_key"],
            correlation_id=row["correlation_id"],
            content_type="application/json",
        )
        await self._collection.delete_one({"_id": row["_id"]})
