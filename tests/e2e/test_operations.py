"""Operators' view of a running system: `resultflow status` lists every process with its
health and metrics URL, each process's metrics count what it did, a process that dies shows,
and one stopped cleanly leaves the list."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp

from contracts import topology
from contracts.v1 import RenderReport
from tests.e2e.system import System
from tests.support import eventually

RESULTFLOW = str(Path(sys.executable).with_name("resultflow"))


def value(metrics: str, name: str, **labels: str) -> float | None:
    """The value of the series `name` with exactly `labels` in Prometheus text."""
    wanted = {f'{key}="{label}"' for key, label in labels.items()}
    for line in metrics.splitlines():
        series, _, number = line.rpartition(" ")
        if series.startswith(name + "{") and set(series[len(name) + 1 : -1].split(",")) == wanted:
            return float(number)
    return None


def resultflow_status(work_dir: Path) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [RESULTFLOW, "status", "--work-dir", str(work_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout)


async def publish_invalid_render_command(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.EXCHANGE)
        body = b'{"report_id": 42}'  # not a RenderReport
        await exchange.publish(aio_pika.Message(body), routing_key=RenderReport.routing_key)


async def metrics_of(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.text()


async def test_status_lists_every_process_with_its_metrics_and_shows_one_that_died_or_stopped(
    system: System,
) -> None:
    work_dir = system.stack.settings.work_dir
    code, status = resultflow_status(work_dir)

    assert code == 0 and status["ready"] is True
    processes = {p["name"]: p for p in status["processes"]}
    assert processes.keys() == system.stack.processes.keys()
    for name, process in processes.items():
        assert process["pid"] == system.stack.processes[name].pid
        assert process["alive"] is True and process["ready"] is True, name
        assert process["metrics_url"] == process["health_url"] + "/metrics"
    every = {"mongodb": True, "broker": True}
    assert processes["convert-1"]["checks"] == every | {"libreoffice": True}
    assert processes["render-1"]["checks"] == every
    assert processes["ingest-mllp"]["checks"] == {"broker": True}
    assert processes["gateway"]["service"] == "gateway"

    await publish_invalid_render_command(system.stack.settings.amqp_url)
    render_metrics = processes["render-1"]["metrics_url"]

    async def counted() -> bool:
        text = await metrics_of(render_metrics)
        invalid = {"service": "render", "message_type": "render.report.v1", "outcome": "invalid"}
        return value(text, "resultflow_messages_failed_total", **invalid) == 1.0

    await eventually(counted, timeout=30)

    system.stack.kill("render-1")
    code, status = resultflow_status(work_dir)
    assert code == 1 and status["ready"] is False
    render = next(p for p in status["processes"] if p["name"] == "render-1")
    assert render["alive"] is False and render["ready"] is False
    others = [p for p in status["processes"] if p["name"] != "render-1"]
    assert all(p["ready"] for p in others)

    # A process stopped as a supervisor stops it says goodbye: no longer listed.
    convert = system.stack.processes["convert-2"]
    os.killpg(convert.pid, signal.SIGTERM)
    convert.wait(60)
    _, status = resultflow_status(work_dir)
    assert "convert-2" not in {p["name"] for p in status["processes"]}
