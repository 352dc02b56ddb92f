"""MongoDB access through PyMongo's async API; the indexes every collection relies on."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.infra.settings import Settings

Database = AsyncDatabase[dict[str, Any]]


def connect(settings: Settings) -> tuple[AsyncMongoClient[dict[str, Any]], Database]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_uri, tz_aware=True, serverSelectionTimeoutMS=10_000
    )
    return client, client[settings.mongodb_database]


async def ensure_indexes(db: Database) -> None:
    # The unique key that makes re-ingest a no-op: a lab's source (sheet row group or LIS
    # accession) can hold one report per version.
    await db.reports.create_index(
        [("lab_id", ASCENDING), ("source_key", ASCENDING), ("version", ASCENDING)],
        unique=True,
        name="report_source_unique",
    )
    await db.reports.create_index([("batch_id", ASCENDING), ("status", ASCENDING)])
    # The release scheduler's look for holds that ran out and releases not yet sent.
    await db.reports.create_index([("status", ASCENDING), ("hold.until", ASCENDING)])
    await db.reports.create_index("access.token_hash", sparse=True)
    await db.reports.create_index("access.reminder_token_hash", sparse=True)
    # One SMS per report version and purpose, ever.
    await db.notifications.create_index(
        [("report_id", ASCENDING), ("version", ASCENDING), ("purpose", ASCENDING)],
        unique=True,
        name="notification_once",
    )
    await db.notifications.create_index("provider_message_id", sparse=True)
    # One .docx and one PDF per report version (`FileStore.put_for_report`).
    await db["fs.files"].create_index(
        [("metadata.report_id", ASCENDING), ("metadata.kind", ASCENDING)],
        unique=True,
        partialFilterExpression={"metadata.report_id": {"$exists": True}},
        name="report_file_once",
    )
    # GridFS's own indexes, which it would otherwise create on a bucket's first upload: a
    # service's MongoDB user may not create indexes (`services.infra.database_access`).
    await db["fs.files"].create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)])
    await db["fs.chunks"].create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)
    await db.users.create_index("username", unique=True)
    await db.sessions.create_index("token_hash", unique=True)
    await db.api_tokens.create_index("token_hash", unique=True)
    await db.portal_sessions.create_index("token_hash", unique=True)
    for expiring in (db.sessions, db.portal_sessions, db.login_throttle):  # gone once expired
        await expiring.create_index("expires_at", expireAfterSeconds=0)
    await db.batches.create_index([("uploaded_at", DESCENDING)])
    await db.audit.create_index("action")
    await db.audit.create_index([("report_id", ASCENDING), ("at", ASCENDING)])
    # The hash chain's places: one writer per place (entries from before the chain have none).
    await db.audit.create_index("seq", unique=True, sparse=True, name="audit_seq_unique")
    await db.audit.create_index([("at", DESCENDING)])  # the audit page, newest first
    await db.dead_letters.create_index([("state", ASCENDING), ("last_failed_at", DESCENDING)])
    await db.outbox.create_index("to")
    # The transactional outbox (not the SMS one above): its relay looks for expired claims.
    await db.message_outbox.create_index([("claimed_until", ASCENDING)])
    await db.sheet_profiles.create_index([("lab_id", ASCENDING), ("name", ASCENDING)], unique=True)
    await db.templates.create_index([("name", ASCENDING), ("version", DESCENDING)])
