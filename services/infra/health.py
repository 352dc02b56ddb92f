"""Every service process's operations port: liveness, readiness and Prometheus metrics.

- `/healthz`: the process answers (liveness; nothing about what it depends on).
- `/readyz`: each readiness check (the broker, MongoDB, and for convert its LibreOffice)
  answers within `CHECK_TIMEOUT` seconds; 200 with every check true, else 503.
- `/metrics`: prometheus-client's registry (services/infra/metrics.py).

It listens on `health_host:health_port` (0: a free port, as on one machine with many
processes; compose gives every container 9100 on its own network, never published) and
records the process in the local process registry (`resultflow status`) while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, generate_latest

from services.infra import metrics
from services.infra.process_registry import ProcessRecord, remove_record, write_record
from services.infra.settings import Settings

log = structlog.get_logger()

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT = 5.0


def database_check(db: Any) -> Check:
    async def mongodb() -> bool:
        return bool((await db.command("ping")).get("ok"))

    return mongodb


def broker_check(broker: Any) -> Check:
    async def broker_answers() -> bool:
        return bool(await broker.ping(timeout=3))

    return broker_answers


async def _passes(check: Check) -> bool:
    with contextlib.suppress(Exception):
        return bool(await asyncio.wait_for(check(), CHECK_TIMEOUT))
    return False


async def readiness(checks: Mapping[str, Check]) -> dict[str, bool]:
    """Each check's answer (False when it raised or took too long), run side by side."""
    answers = await asyncio.gather(*(_passes(check) for check in checks.values()))
    return dict(zip(checks, answers, strict=True))


def metrics_response(text: bytes) -> web.Response:
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


class HealthServer:
    """The operations port of one service process."""

    def __init__(
        self,
        settings: Settings,
        service: str,
        checks: Mapping[str, Check],
        before_scrape: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._settings = settings
        self.service = service
        self.name = settings.process_name or service
        self._checks = dict(checks)
        self._before_scrape = before_scrape
        self._runner: web.AppRunner | None = None
        self._record: Path | None = None
        self.url = ""

    def add_check(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        answers = await readiness(self._checks)
        ready = all(answers.values())
        return web.json_response(
            {"status": "ok" if ready else "unavailable", **answers}, status=200 if ready else 503
        )

    async def metrics(self, request: web.Request) -> web.Response:
        for check, passed in (await readiness(self._checks)).items():
            metrics.READY.labels(check).set(1 if passed else 0)
        if self._before_scrape is not None:
            try:
                await self._before_scrape()
            except Exception as error:  # the process's own figures are still worth serving
                log.warning("metrics.refresh_failed", error=type(error).__name__)
        return metrics_response(generate_latest(REGISTRY))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, port = self._settings.health_host, self._settings.health_port
        await web.TCPSite(self._runner, host, port).start()
        bound = self._runner.addresses[0]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - a display
        self.url = f"http://{shown}:{bound[1]}"
        pid = os.getpid()
        record = ProcessRecord(
            name=self.name,
            service=self.service,
            pid=pid,
            process_group=os.getpgid(pid),
            health_url=self.url,
            metrics_url=f"{self.url}/metrics",
            started_at=time.time(),
            run_pid=os.getppid(),  # what started it: `resultflow run`, a test run, an init
        )
        with contextlib.suppress(OSError):  # a read-only work dir must not stop a service
            self._record = write_record(self._settings.work_dir, record)
        log.info("health.listening", url=self.url)

    async def stop(self) -> None:
        if self._record is not None:
            remove_record(self._record)
            self._record = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
