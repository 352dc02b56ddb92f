"""The whole system for one fault-test module: every service as its own process, restarted by
a supervisor when it dies (as systemd or Kubernetes would), and the invariants every fault
test checks, with a one-line JSON summary printed and appended to the results file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aio_pika
from pymongo.errors import PyMongoError

from contracts import topology
from devtools.admin_client import AdminClient
from devtools.demo import demo_sheet
from devtools.launcher import Stack, local_settings
from services.gateway.accounts_store import ApiTokens, create_user
from services.gateway.permissions import Role
from services.infra.database import Database, connect, ensure_indexes
from tests.support import PASSWORD, eventually

FINAL = ("notified", "delivered", "failed")
RESULTS = Path(os.environ.get("RESULTFLOW_FAULT_RESULTS", "build/fault-results.jsonl"))


@dataclass
class FaultSystem:
    stack: Stack
    db: Database
    admin: AdminClient
    token: str  # an LIS user's API token: POST /api/v1/batches
    amqp_url: str
    restarted: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.stack.settings.public_base_url

    async def supervise(self) -> None:
        while True:
            for name, process in list(self.stack.processes.items()):
                if process.poll() is not None:
                    self.restarted.append(name)
                    self.stack.restart(name)
            await asyncio.sleep(0.2)

    async def upload(self, filename: str, data: bytes) -> str:
        return await self.admin.upload(filename, data)

    async def queue_depth(self) -> int | None:
        """Messages waiting in every work queue, or None when the broker does not answer."""
        try:
            connection = await asyncio.wait_for(aio_pika.connect(self.amqp_url), 5)
        except Exception:
            return None
        async with connection:
            channel = await connection.channel()
            total = 0
            for queue in topology.QUEUES:
                declared = await channel.declare_queue(queue.name, passive=True)
                total += declared.declaration_result.message_count or 0
            return total


@contextlib.asynccontextmanager
async def fault_system(
    mongodb_uri: str,
    amqp_url: str,
    tmp_path: Path,
    *,
    workers: dict[str, int] | None = None,
    direct_mongodb_uri: str | None = None,
) -> AsyncIterator[FaultSystem]:
    """Services reach MongoDB at `mongodb_uri` and RabbitMQ at `amqp_url` (through a proxy,
    say); the test reads MongoDB at `direct_mongodb_uri` (default: the same)."""
    settings = local_settings(
        mongodb_uri, amqp_url, f"faults_{uuid.uuid4().hex[:8]}", tmp_path / "work"
    )
    test_settings = settings.model_copy(update={"mongodb_uri": direct_mongodb_uri or mongodb_uri})
    client, db = connect(test_settings)
    await ensure_indexes(db)
    await create_user(db, "admin", PASSWORD)
    await create_user(db, "fault-lis", secrets.token_urlsafe(24), Role.LIS)
    _, token = await ApiTokens(db).create("fault-lis", "fault tests")
    stack = Stack(settings, tmp_path / "logs", workers)
    admin = AdminClient(settings.public_base_url)
    supervisor: asyncio.Task[None] | None = None
    try:
        stack.start()
        await stack.wait_ready(timeout=180)
        await admin.login("admin", PASSWORD)
        system = FaultSystem(stack, db, admin, token, amqp_url)
        supervisor = asyncio.create_task(system.supervise())
        yield system
    finally:
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await admin.close()
        await asyncio.to_thread(stack.stop)  # the proxies (this loop) keep relaying meanwhile
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.drop_database(settings.mongodb_database), 30)
        await client.close()


async def upload_under_way(
    system: FaultSystem, patients: int, name: str, first_id: int
) -> tuple[str, int]:
    """Upload a sheet and wait until it is under way; the batch id and the reports already
    notified (fewer than all: the fault lands mid-batch)."""
    batch_id = await system.upload(f"{name}.xlsx", demo_sheet(patients, first_id=first_id))

    async def under_way() -> bool:
        done = await system.db.reports.count_documents(
            {"batch_id": batch_id, "status": {"$in": ["converted", "notified"]}}
        )
        return done >= 3

    await eventually(under_way, timeout=180, interval=0.2)
    notified = await system.db.reports.count_documents({"batch_id": batch_id, "status": "notified"})
    assert notified < patients, "the batch was through before the fault"
    return batch_id, notified


async def settled(system: FaultSystem, batch_ids: list[str], patients: int) -> bool:
    """Every batch ingested, each of its reports in a final state, no message waiting."""
    db = system.db
    ingested = await db.batches.count_documents({"_id": {"$in": batch_ids}, "status": "ingested"})
    if ingested < len(batch_ids):
        return False
    final = await db.reports.count_documents(
        {"batch_id": {"$in": batch_ids}, "status": {"$in": list(FINAL)}}
    )
    if final < patients:
        return False
    return await system.queue_depth() == 0 and await db.message_outbox.count_documents({}) == 0


async def _settled_or_unreachable(system: FaultSystem, batch_ids: list[str], patients: int) -> bool:
    try:
        return await settled(system, batch_ids, patients)
    except PyMongoError:  # the database is down or frozen: not yet
        return False


async def wait_settled(
    system: FaultSystem, batch_ids: list[str], patients: int, timeout: float
) -> float:
    """Seconds until `settled`; AssertionError with what is missing after `timeout`."""
    started = time.monotonic()
    while not await _settled_or_unreachable(system, batch_ids, patients):
        if time.monotonic() - started > timeout:
            figures = await invariants(system, batch_ids, patients)
            raise AssertionError(f"not drained within {timeout:.0f}s: {figures}")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def invariants(system: FaultSystem, batch_ids: list[str], patients: int) -> dict[str, Any]:
    """What a fault left: reports per final state, lost, duplicate reports, PDFs and SMS."""
    db = system.db
    reports = await db.reports.find(
        {"batch_id": {"$in": batch_ids}}, {"status": 1, "source_key": 1, "patient.phone": 1}
    ).to_list()
    states: dict[str, int] = {}
    for report in reports:
        states[report["status"]] = states.get(report["status"], 0) + 1
    ids = [r["_id"] for r in reports]
    pipeline: list[dict[str, Any]] = [
        {"$match": {"metadata.report_id": {"$in": ids}, "metadata.kind": "pdf"}},
        {"$group": {"_id": "$metadata.report_id", "n": {"$sum": 1}}},
    ]
    pdfs = await (await db["fs.files"].aggregate(pipeline)).to_list()
    phones = [r["patient"]["phone"] for r in reports]
    notified = {r["_id"] for r in reports if r["status"] in ("notified", "delivered")}
    texted = [t["to"] for t in await db.outbox.find({"to": {"$in": phones}}, {"to": 1}).to_list()]
    finished = sum(states.get(s, 0) for s in FINAL)
    return {
        "reports": len(reports),
        "states": states,
        "lost": patients - finished,
        "duplicate_reports": len(reports) - len({r["source_key"] for r in reports}),
        "duplicate_pdfs": sum(p["n"] - 1 for p in pdfs),
        "missing_pdfs": len(notified - {p["_id"] for p in pdfs}),
        "duplicate_sms": len(texted) - len(set(texted)),
        "sms": len(set(texted)),
        "dead_letters": await db.dead_letters.count_documents({}),
    }


def assert_invariants(figures: dict[str, Any], patients: int) -> None:
    """Each patient: one report, notified once, one PDF; nothing lost or failed."""
    assert figures["reports"] == patients, figures
    assert figures["lost"] == 0, figures
    assert figures["duplicate_reports"] == 0, figures
    assert figures["states"] == {"notified": patients}, figures
    assert figures["duplicate_pdfs"] == 0, figures
    assert figures["missing_pdfs"] == 0, figures
    assert figures["duplicate_sms"] == 0, figures
    assert figures["sms"] == patients, figures


def record(fault: str, **figures: Any) -> None:
    """Print the fault's one-line JSON summary and append it to the results file."""
    line = json.dumps({"fault": fault, **figures}, sort_keys=True, default=str)
    print(f"\nFAULT-RESULT {line}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as results:
        results.write(line + "\n")


class Freezable(Protocol):
    def signal(self, signum: signal.Signals) -> None: ...


class Cuttable(Protocol):
    def blackhole(self) -> None: ...
    def restore(self) -> None: ...


async def frozen_for(server: Freezable, seconds: float) -> None:
    """SIGSTOP the server for `seconds`, then let it go on (SIGCONT) whatever happens."""
    server.signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        server.signal(signal.SIGCONT)


async def blackholed_for(proxy: Cuttable, seconds: float) -> None:
    """Swallow the traffic through `proxy` for `seconds`, connections left open."""
    proxy.blackhole()
    try:
        await asyncio.sleep(seconds)
    finally:
        proxy.restore()
