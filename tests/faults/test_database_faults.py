"""The MongoDB server killed and started again, frozen, or cut off while a batch is on its
way: every service gets its connection back, nothing is lost, no PDF is made twice, nobody
is texted twice.

A `secantusd-py` of this module's own (`MongoNode`), reached by the services through a TCP
proxy the tests control; the session's server is never touched.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.faults.mongo_node import MongoNode
from tests.faults.system import (
    FaultSystem,
    assert_invariants,
    blackholed_for,
    fault_system,
    frozen_for,
    invariants,
    record,
    upload_under_way,
    wait_settled,
)
from tests.faults.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

PATIENTS = 30
CUT_SECONDS = float(os.environ.get("RESULTFLOW_FAULT_CUT_SECONDS", "15"))  # frozen, blackholed


@dataclass
class Broken:
    system: FaultSystem
    node: MongoNode
    proxy: TcpProxy


@pytest.fixture(scope="module")
async def broken(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Broken]:
    tmp_path = tmp_path_factory.mktemp("database_faults")
    node = MongoNode(tmp_path / "mongodb")
    seconds = await node.start()
    print(f"\ntest-owned secantusd started in {seconds:.1f} s")
    proxy = await TcpProxy("127.0.0.1", node.port).start()
    proxied = node.uri.replace(f":{node.port}/", f":{proxy.port}/")
    try:
        async with fault_system(proxied, amqp_url, tmp_path, direct_mongodb_uri=node.uri) as system:
            yield Broken(system, node, proxy)
    finally:
        await proxy.close()
        await asyncio.to_thread(node.stop)


async def finish(broken: Broken, fault: str, batch_id: str, before: int, **seen: object) -> None:
    system = broken.system
    drained = await wait_settled(system, [batch_id], PATIENTS, timeout=240)
    await asyncio.sleep(3)  # a duplicate PDF or SMS would show up now
    figures = await invariants(system, [batch_id], PATIENTS)
    record(
        fault,
        patients=PATIENTS,
        notified_before_fault=before,
        drain_seconds=round(drained, 1),
        restarted=list(system.restarted),
        **seen,
        **figures,
    )
    assert_invariants(figures, PATIENTS)
    assert figures["dead_letters"] == 0, figures


async def test_mongodb_killed_and_restarted_mid_batch_loses_nothing_and_repeats_nothing(
    broken: Broken,
) -> None:
    batch_id, before = await upload_under_way(broken.system, PATIENTS, "db-restart", 41000)
    stopped = time.monotonic()
    await asyncio.to_thread(broken.node.kill)
    await asyncio.sleep(2)
    up = round(await broken.node.start(), 1)
    down = round(time.monotonic() - stopped, 1)
    await finish(broken, "mongodb killed+restarted", batch_id, before, down_s=down, start_s=up)


async def test_mongodb_frozen_mid_batch_loses_nothing_and_repeats_nothing(
    broken: Broken,
) -> None:
    batch_id, before = await upload_under_way(broken.system, PATIENTS, "db-freeze", 42000)
    await frozen_for(broken.node, CUT_SECONDS)
    await finish(broken, "mongodb frozen (SIGSTOP)", batch_id, before, frozen_s=CUT_SECONDS)


async def test_mongodb_connections_blackholed_mid_batch_lose_nothing_and_repeat_nothing(
    broken: Broken,
) -> None:
    batch_id, before = await upload_under_way(broken.system, PATIENTS, "db-blackhole", 43000)
    await blackholed_for(broken.proxy, CUT_SECONDS)
    await finish(broken, "mongodb blackholed", batch_id, before, blackholed_s=CUT_SECONDS)
