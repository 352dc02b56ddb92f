"""RabbitMQ restarted, frozen, cut off and alarmed while a batch is on its way: every service
reconnects (and re-declares), nothing is lost, no PDF is made twice, nobody is texted twice;
under a memory alarm uploads answer 503 at once instead of hanging.

Everything here runs against a RabbitMQ node of this module's own (`rabbit_node`), reached
through a TCP proxy the tests control, so the shared broker is never touched.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from contracts import topology
from devtools.demo import demo_sheet
from services.infra.broker import NOT_ACCEPTING_WORK
from tests.faults.rabbit_node import RabbitNode
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
from tests.support import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

PATIENTS = 30  # enough that the fault lands mid-batch
FREEZE_SECONDS = float(os.environ.get("RESULTFLOW_FAULT_FREEZE_SECONDS", "30"))  # SIGSTOP
CUT_SECONDS = float(os.environ.get("RESULTFLOW_FAULT_CUT_SECONDS", "15"))  # blackholed
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Broken:
    system: FaultSystem
    node: RabbitNode
    proxy: TcpProxy


@pytest.fixture(scope="module")
async def broken(
    rabbit_node: RabbitNode, mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Broken]:
    proxy = await TcpProxy("127.0.0.1", rabbit_node.port).start()
    amqp_url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
    tmp_path: Path = tmp_path_factory.mktemp("broker_faults")
    try:
        async with fault_system(mongodb_uri, amqp_url, tmp_path) as system:
            system.amqp_url = rabbit_node.url  # the test's own checks go straight to the node
            yield Broken(system, rabbit_node, proxy)
    finally:
        await proxy.close()


async def every_queue_consumed(node: RabbitNode) -> bool:
    """Each service reconnected: every work queue has its consumer again."""
    connection = await aio_pika.connect(node.url)
    async with connection:
        channel = await connection.channel()
        for queue in topology.QUEUES:
            declared = await channel.declare_queue(queue.name, passive=True)
            if not declared.declaration_result.consumer_count:
                return False
    return True


async def finish(broken: Broken, fault: str, batch_id: str, before: int, **seen: float) -> None:
    system, started = broken.system, time.monotonic()
    drained = await wait_settled(system, [batch_id], PATIENTS, timeout=240)
    await eventually(lambda: every_queue_consumed(broken.node), timeout=60, interval=1)
    await asyncio.sleep(3)  # a duplicate PDF or SMS would show up now
    figures = await invariants(system, [batch_id], PATIENTS)
    record(
        fault,
        patients=PATIENTS,
        notified_before_fault=before,
        drain_seconds=round(drained, 1),
        checked_seconds=round(time.monotonic() - started, 1),
        restarted=list(system.restarted),
        **seen,
        **figures,
    )
    assert_invariants(figures, PATIENTS)
    assert figures["dead_letters"] == 0, figures


async def test_rabbitmq_restarted_mid_batch_loses_nothing_and_repeats_nothing(
    broken: Broken,
) -> None:
    batch_id, before = await upload_under_way(broken.system, PATIENTS, "broker-restart", 31000)
    stopped = time.monotonic()
    await asyncio.to_thread(broken.node.stop)
    await asyncio.sleep(2)
    await broken.node.start()
    down = time.monotonic() - stopped
    await finish(broken, "rabbitmq restarted", batch_id, before, down_seconds=round(down, 1))


async def test_rabbitmq_frozen_mid_batch_loses_nothing_and_repeats_nothing(
    broken: Broken,
) -> None:
    batch_id, before = await upload_under_way(broken.system, PATIENTS, "broker-freeze", 32000)
    await frozen_for(broken.node, FREEZE_SECONDS)
    await finish(broken, "rabbitmq frozen (SIGSTOP)", batch_id, before, frozen_s=FREEZE_SECONDS)


async def test_rabbitmq_traffic_blackholed_mid_batch_loses_nothing_and_repeats_nothing(
    broken: Broken,
) -> None:
    batch_id, before = await upload_under_way(broken.system, PATIENTS, "broker-blackhole", 33000)
    await blackholed_for(broken.proxy, CUT_SECONDS)
    await finish(broken, "rabbitmq blackholed", batch_id, before, blackholed_s=CUT_SECONDS)


async def post_upload(
    system: FaultSystem, http: aiohttp.ClientSession, api: bool, first_id: int
) -> tuple[int, str, float]:
    """One upload, by the dashboard's form or the API: status, body, seconds to answer."""
    form = aiohttp.FormData()
    sheet = demo_sheet(2, first_id=first_id)
    headers = {}
    if api:
        url = system.base_url + "/api/v1/batches"
        headers["Authorization"] = f"Bearer {system.token}"
        form.add_field("file", sheet, filename=f"alarm-{first_id}.xlsx", content_type=XLSX)
    else:
        url = system.base_url + "/upload"
        form.add_field("csrf_token", await system.admin._csrf("/upload"))
        form.add_field("file", sheet, filename=f"alarm-{first_id}.xlsx", content_type=XLSX)
        form.add_field("preview", "false")
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=30)
    async with http.post(url, data=form, headers=headers, timeout=timeout) as response:
        return response.status, await response.text(), time.monotonic() - started


async def test_under_a_memory_alarm_uploads_answer_503_at_once_then_recover(
    broken: Broken,
) -> None:
    system, node = broken.system, broken.node
    accepted: list[str] = []
    answers: list[tuple[str, int, float]] = []
    await asyncio.to_thread(node.ctl, "set_vm_memory_high_watermark", "0")
    try:
        refused = {"api": False, "form": False}
        for attempt in range(6):
            api = attempt % 2 == 0
            http = system.admin.http if not api else aiohttp.ClientSession()
            try:
                status, body, seconds = await post_upload(system, http, api, 34000 + 10 * attempt)
            finally:
                if api:
                    await http.close()
            answers.append(("api" if api else "form", status, round(seconds, 1)))
            # Never a hang: at worst the publish wait, then the stored batch waits its turn.
            assert seconds < 10, answers
            if status == 503:
                assert NOT_ACCEPTING_WORK in body, body
                refused["api" if api else "form"] = True
            else:
                assert status in (200, 202), (status, body[:300])
                accepted.append(body)
            if all(refused.values()):
                break
        assert all(refused.values()), answers
    finally:
        await asyncio.to_thread(node.ctl, "set_vm_memory_high_watermark", "0.4")

    # Recovered: the alarm cleared, an upload is taken and every batch, also one accepted
    # while the broker refused work, is worked through.
    async def taken() -> str | None:
        try:
            return await system.upload("after-alarm.xlsx", demo_sheet(2, first_id=34900))
        except RuntimeError:
            return None

    recovered = time.monotonic()
    after = await eventually(taken, timeout=30, interval=1)
    batch_ids = [after] + [
        b["_id"]
        async for b in system.db.batches.find({"filename": {"$regex": "^alarm-"}}, {"_id": 1})
    ]
    patients = 2 * len(batch_ids)
    drained = await wait_settled(system, batch_ids, patients, timeout=120)
    figures = await invariants(system, batch_ids, patients)
    record(
        "rabbitmq memory alarm",
        answers=answers,
        recovered_upload_s=round(time.monotonic() - recovered, 1),
        drain_seconds=round(drained, 1),
        patients=patients,
        **figures,
    )
    assert_invariants(figures, patients)
