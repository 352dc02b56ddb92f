"""Every service SIGKILLed at each of its crash points (`services.infra.crash_points`), then
restarted, as a supervisor would: nothing is lost, nothing is made or sent twice, and every
report ends in exactly one state a person can see.

One system runs for the whole module with every crash point named in its environment, each
disarmed by its marker file; a test arms one point by deleting its marker, uploads a small
sheet of new patients, waits until the point has fired (its process is dead) and the
supervisor below has restarted that process, then checks the invariants on its own batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devtools.admin_client import AdminClient
from devtools.demo import demo_sheet
from devtools.launcher import Stack, local_settings
from services.gateway.accounts_store import create_user
from services.infra.crash_points import ARMED_VARIABLE, MARKER_DIR_VARIABLE, marker
from services.infra.database import Database, connect, ensure_indexes
from services.notify.logic import OUTCOME_UNKNOWN_REASON
from tests.support import PASSWORD, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

PATIENTS = 6
POINTS = (
    "gateway.after_batch_stored",
    "ingest.after_reports_stored",
    *(
        f"{service}.{point}"
        for service in ("render", "convert")
        for point in (
            "before_file_stored",
            "after_file_stored",
            "before_status_update",
            "after_status_update",  # committed with its messages, not yet published
            "before_ack",
        )
    ),
    "notify.after_sms_accepted",  # the provider has the SMS; nothing recorded it yet
)
DURATIONS: dict[str, float] = {}


@dataclass
class Crashing:
    """A running system whose crashed processes are started again at once."""

    stack: Stack
    db: Database
    admin: AdminClient
    markers: Path
    restarted: list[str] = field(default_factory=list)

    async def supervise(self) -> None:
        while True:
            for name, process in list(self.stack.processes.items()):
                if process.poll() is not None:
                    self.restarted.append(name)
                    self.stack.restart(name)
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def crashing(
    mongodb_uri: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Crashing]:
    tmp_path = tmp_path_factory.mktemp("crash_points")
    markers = tmp_path / "markers"
    markers.mkdir()
    for point in POINTS:
        marker(point, markers).touch()  # every point disarmed until its test arms it
    settings = local_settings(
        mongodb_uri, amqp_url, f"faults_{uuid.uuid4().hex[:8]}", tmp_path / "work"
    )
    client, db = connect(settings)
    await ensure_indexes(db)
    await create_user(db, "admin", PASSWORD)
    stack = Stack(settings, tmp_path / "logs")
    stack.env[ARMED_VARIABLE] = ",".join(POINTS)
    stack.env[MARKER_DIR_VARIABLE] = str(markers)
    admin = AdminClient(settings.public_base_url)
    supervisor: asyncio.Task[None] | None = None
    try:
        stack.start()
        await stack.wait_ready()
        await admin.login("admin", PASSWORD)  # the session outlives a gateway restart
        crashing = Crashing(stack, db, admin, markers)
        supervisor = asyncio.create_task(crashing.supervise())
        yield crashing
    finally:
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await admin.close()
        stack.stop()
        await client.drop_database(settings.mongodb_database)
        await client.close()
        for point, seconds in DURATIONS.items():
            print(f"crash point {point}: {seconds:.1f} s")


async def upload(crashing: Crashing, filename: str, first_id: int) -> str:
    """The new batch's id, also when the gateway died answering the upload."""
    try:
        return await crashing.admin.upload(filename, demo_sheet(PATIENTS, first_id=first_id))
    except Exception:
        batch = await eventually(lambda: crashing.db.batches.find_one({"filename": filename}))
        return str(batch["_id"])


async def settled(db: Database, batch_id: str, point: str) -> list[dict[str, Any]] | None:
    """The batch's reports once each is in a final state, else None."""
    batch = await db.batches.find_one({"_id": batch_id})
    if batch is None or batch["status"] != "ingested":
        return None
    reports = await db.reports.find({"batch_id": batch_id}).to_list()
    final = {"notified", "delivered", "failed"}
    if len(reports) < PATIENTS or any(r["status"] not in final for r in reports):
        return None
    return reports


@pytest.mark.parametrize("point", POINTS)
async def test_a_service_killed_at_a_crash_point_loses_nothing_and_repeats_nothing(
    crashing: Crashing, point: str
) -> None:
    started = time.monotonic()
    db, service = crashing.db, point.split(".")[0]
    crashes_before = len(crashing.restarted)
    first_id = 20000 + 100 * POINTS.index(point)
    marker(point, crashing.markers).unlink()  # armed: the next process to get there dies

    batch_id = await upload(crashing, f"crash-{point}.xlsx", first_id)
    reports = await eventually(lambda: settled(db, batch_id, point), timeout=150, interval=0.5)
    await asyncio.sleep(2)  # a duplicate message, PDF or SMS would show up now

    # It struck: the point fired once, and its service's process was restarted.
    assert marker(point, crashing.markers).exists()
    assert any(name.startswith(service) for name in crashing.restarted[crashes_before:])

    # 0 lost: every patient of the sheet has exactly one report, each in one final state.
    reports = await db.reports.find({"batch_id": batch_id}).to_list()
    assert len(reports) == PATIENTS
    assert len({r["source_key"] for r in reports}) == PATIENTS
    failed = [r for r in reports if r["status"] == "failed"]
    if point == "notify.after_sms_accepted":
        # The SMS being sent when notify died (it may have had several on the way) is never
        # sent again: the report fails with a reason that tells staff to check.
        assert failed, "the SMS cut short shows as failed"
        assert all(r["failure_reason"] == OUTCOME_UNKNOWN_REASON for r in failed)
    else:
        assert failed == []
    assert all(r["status"] == "notified" for r in reports if r not in failed)

    # 0 duplicate files: one .docx and one PDF per report version.
    for report in reports:
        for kind in ("docx", "pdf"):
            files = await db["fs.files"].count_documents(
                {"metadata.report_id": report["_id"], "metadata.kind": kind}
            )
            assert files == 1, f"{files} {kind} files for one report"

    # 0 duplicate SMS (the dev provider's `outbox` is the patients' phones): one for each
    # patient notified, at most one for each whose SMS's outcome is unknown.
    phones = [r["patient"]["phone"] for r in reports]
    texted = [t["to"] for t in await db.outbox.find({"to": {"$in": phones}}).to_list()]
    assert len(texted) == len(set(texted)), "a patient was texted twice"
    assert {r["patient"]["phone"] for r in reports if r not in failed} <= set(texted)
    if failed:
        assert set(texted) & {r["patient"]["phone"] for r in failed}, "the cut-short SMS left"

    # No intent left behind: every stored message goes out (a dead writer's once its claim
    # has run out).
    async def relayed() -> bool:
        return await db.message_outbox.count_documents({}) == 0

    await eventually(relayed, timeout=30, interval=0.5)
    DURATIONS[point] = time.monotonic() - started
