"""The audit trail is tamper-evident: `resultflow audit verify` (run as operators run it, a
separate process) finds an entry changed, removed or slipped out of the chain in the
database, and names the first one; writers appending at once still leave one unbroken chain."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from services.infra.audit import Audit, staff
from services.infra.audit_chain import entry_hash
from services.infra.database import Database
from services.infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


async def resultflow(settings: Settings, *args: str) -> tuple[int, str]:
    """Run the `resultflow` command on the test database: exit code and all it printed."""
    env = {
        **os.environ,
        "MONGODB_URI": settings.mongodb_uri,
        "RESULTFLOW_MONGODB_DATABASE": settings.mongodb_database,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from services.cli import main; main()",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def five_entries(db: Database) -> None:
    audit = Audit(db)
    await audit.write(staff("ann"), "batch.uploaded", None, {"filename": "a.xlsx"}, object="b1")
    await audit.write(staff("ann"), "report.released", "r1", {"reason": "checked"})
    await audit.write("patient", "portal.check_failed", "r1", {}, outcome="failure")
    await audit.write("patient", "report.viewed", "r1", {"ip": "203.0.113.7"})
    await audit.write("system", "sms.sent", "r2", {"provider": "outbox"})


async def test_an_intact_trail_verifies_and_says_how_many_entries_it_checked(
    db: Database, settings: Settings
) -> None:
    await five_entries(db)
    code, output = await resultflow(settings, "audit", "verify")
    assert code == 0, output
    assert "audit chain intact: 5 entries" in output


async def test_an_entry_edited_in_the_database_fails_verify_naming_it(
    db: Database, settings: Settings
) -> None:
    await five_entries(db)
    # Someone with database access hides a failed date-of-birth check.
    await db.audit.update_one({"seq": 3}, {"$set": {"outcome": "success"}})
    code, output = await resultflow(settings, "audit", "verify")
    assert code == 1
    assert "audit chain broken at entry 3" in output
    assert "portal.check_failed" in output and "do not match its hash" in output


async def test_an_edit_whose_hash_was_recomputed_breaks_the_next_entry(
    db: Database, settings: Settings
) -> None:
    await five_entries(db)
    entry = await db.audit.find_one({"seq": 2})
    assert entry is not None
    entry["detail"] = {"reason": "nobody checked"}
    await db.audit.update_one(
        {"seq": 2}, {"$set": {"detail": entry["detail"], "hash": entry_hash(entry)}}
    )
    code, output = await resultflow(settings, "audit", "verify")
    assert code == 1
    assert "audit chain broken at entry 3" in output
    assert "does not match the hash of entry 2" in output


async def test_a_deleted_entry_fails_verify_naming_the_gap(
    db: Database, settings: Settings
) -> None:
    await five_entries(db)
    await db.audit.delete_one({"seq": 4})
    code, output = await resultflow(settings, "audit", "verify")
    assert code == 1
    assert "audit chain broken at entry 5" in output and "entry 4 before it is missing" in output


async def test_an_entry_taken_out_of_the_chain_is_caught(db: Database, settings: Settings) -> None:
    await five_entries(db)
    await db.audit.update_one({"seq": 5}, {"$unset": {"seq": ""}})
    code, output = await resultflow(settings, "audit", "verify")
    assert code == 1 and "an entry without a seq" in output and "sms.sent" in output


async def test_entries_from_before_the_chain_are_counted_but_not_checked(
    db: Database, settings: Settings
) -> None:
    await db.audit.insert_one(
        {
            "at": datetime(2025, 1, 1, tzinfo=UTC),
            "actor": "patient",
            "action": "portal.opened",
            "report_id": "r0",
            "detail": {},
        }
    )
    await five_entries(db)
    code, output = await resultflow(settings, "audit", "verify")
    assert code == 0, output
    assert "5 entries" in output and "1 older entries predate the chain" in output


async def test_the_chain_verifies_through_a_client_that_reads_times_without_a_zone(
    db: Database, settings: Settings
) -> None:
    await five_entries(db)
    naive: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        report = await Audit(naive[settings.mongodb_database]).verify()
    finally:
        await naive.close()
    assert report.broken is None and report.checked == 5


async def test_two_writers_appending_at_once_leave_one_unbroken_chain(
    db: Database, settings: Settings
) -> None:
    # Two gateway replicas: each its own client and connection pool.
    other: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    try:
        writers = [Audit(db), Audit(other[settings.mongodb_database])]
        await asyncio.gather(
            *(
                writers[n % 2].write(staff(f"user{n}"), "report.viewed", f"r{n}", {"n": n})
                for n in range(20)
            )
        )
    finally:
        await other.close()
    seqs = sorted([entry["seq"] async for entry in db.audit.find()])
    assert seqs == list(range(1, 21))
    code, output = await resultflow(settings, "audit", "verify")
    assert code == 0 and "audit chain intact: 20 entries" in output, output
