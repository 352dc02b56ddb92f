"""`resultflow status`: every service process of the local system, as one JSON object.

It reads the process registry (`<work_dir>/processes/`, services/infra/process_registry.py)
and asks each process's operations port: `/healthz` (alive) and `/readyz` (ready, with each
check's answer); a process without an operations port (the local MongoDB-protocol server)
counts as ready while it runs. Exit 0 when every process is ready, else 1 (none running
included).

    {"ready": true, "processes": [{"name": "convert-1", "service": "convert", "pid": 4242,
      "alive": true, "ready": true, "checks": {"mongodb": true, "broker": true,
      "libreoffice": true}, "health_url": "http://127.0.0.1:40213",
      "metrics_url": "http://127.0.0.1:40213/metrics"}, ...]}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from services.infra.process_registry import ProcessRecord, alive, is_ours, read_records

TIMEOUT = aiohttp.ClientTimeout(total=10)


def add_commands(commands: Any) -> None:
    status = commands.add_parser(
        "status", help="the local system's processes: name, pid, health, metrics URL (JSON)"
    )
    status.add_argument(
        "--work-dir", type=Path, default=None, help="the run's work dir (RESULTFLOW_WORK_DIR)"
    )


async def _probe(http: aiohttp.ClientSession, record: ProcessRecord) -> dict[str, Any]:
    running = alive(record.pid) and is_ours(record.pid)
    answer: dict[str, Any] = {"name": record.name, "service": record.service, "pid": record.pid}
    healthy, ready, checks = running, running, {}
    if running and record.health_url:
        healthy = ready = False
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with http.get(record.health_url + "/healthz") as response:
                healthy = response.status == 200
            async with http.get(record.health_url + "/readyz") as response:
                ready = response.status == 200
                checks = {k: v for k, v in (await response.json()).items() if k != "status"}
    answer |= {"alive": healthy, "ready": ready, "checks": checks}
    return answer | {"health_url": record.health_url, "metrics_url": record.metrics_url}


async def status(work_dir: Path) -> dict[str, Any]:
    records = [record for _, record in read_records(work_dir)]
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        processes = list(await asyncio.gather(*(_probe(http, r) for r in records)))
    ready = bool(processes) and all(p["ready"] for p in processes)
    return {"ready": ready, "work_dir": str(work_dir), "processes": processes}


def run(args: argparse.Namespace) -> None:
    from services.infra.settings import get_settings

    report = asyncio.run(status(args.work_dir or get_settings().work_dir))
    print(json.dumps(report))
    sys.exit(0 if report["ready"] else 1)
