"""Faults with every service running as its own process: nothing is lost, nobody is texted
twice, every failure is visible."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from devtools.admin_client import wait_for_batch
from devtools.demo import demo_sheet
from tests.e2e.system import System
from tests.support import eventually

pytestmark = pytest.mark.e2e
PATIENTS = 40  # enough that a fault always lands mid-batch


async def under_way(system: System) -> bool:
    """Some reports are through conversion."""
    done = await system.db.reports.count_documents({"status": {"$in": ["converted", "notified"]}})
    return done >= 3


async def assert_still_to_come(system: System) -> None:
    """The fault struck mid-batch, or the test would prove nothing."""
    assert await system.db.outbox.count_documents({}) < PATIENTS


async def assert_every_patient_texted_once(system: System, batch_id: str) -> None:
    async def all_texted() -> bool:
        return await system.db.outbox.count_documents({}) >= PATIENTS

    await eventually(all_texted, timeout=300, interval=0.5)
    batch = await wait_for_batch(system.db, batch_id, timeout=60)
    await asyncio.sleep(3)  # a duplicate SMS would arrive now
    assert batch["reports_created"] == PATIENTS
    assert await system.db.outbox.count_documents({}) == PATIENTS
    assert len(await system.db.outbox.distinct("to")) == PATIENTS
    notified = await system.db.reports.count_documents({"status": "notified"})
    assert notified == PATIENTS


async def test_converter_killed_mid_batch_loses_nothing_and_texts_nobody_twice(
    system: System,
) -> None:
    batch_id = await system.upload("results.xlsx", demo_sheet(PATIENTS))
    await eventually(lambda: under_way(system), timeout=120)
    system.stack.kill("convert-1")  # its unacked message goes back to the queue
    await assert_still_to_come(system)
    await asyncio.sleep(1)
    system.stack.restart("convert-1")  # and its orphaned LibreOffice is reaped on start
    await assert_every_patient_texted_once(system, batch_id)
    system.stack.check_alive()
    leftovers = subprocess.run(
        ["pgrep", "-f", f"office-{system.stack.killed_pids[0]}-"], capture_output=True
    )
    assert leftovers.stdout == b"", "the killed worker's LibreOffice is still running"


# RabbitMQ restarted, frozen, blackholed and alarmed mid-batch: tests/faults/test_broker_faults.py,
# on a RabbitMQ node of its own (never the shared one).
