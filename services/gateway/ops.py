"""Operations: liveness/readiness (`/healthz`) and Prometheus metrics (`/metrics`)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from services.gateway import logic
from services.infra.audit import PATIENT
from services.infra.database import Database
from services.infra.service import Resources


class Stats:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _group(self, collection: str, field: str, match: dict[str, Any]) -> dict[str, int]:
        cursor = await self._db[collection].aggregate(
            [{"$match": match}, {"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
        )
        return {str(row["_id"]): int(row["n"]) async for row in cursor}

    async def reports_by_status(self) -> dict[str, int]:
        return await self._group("reports", "status", {})

    async def batches_by_status(self) -> dict[str, int]:
        return await self._group("batches", "status", {})

    async def portal_events(self) -> dict[str, int]:
        return await self._group("audit", "action", {"actor": PATIENT})


class OpsHandlers:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._stats = Stats(resources.db)

    async def healthz(self, request: web.Request) -> web.Response:
        mongodb = broker = False
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._resources.db.command("ping"), timeout=3)
            mongodb = True
        with contextlib.suppress(Exception):
            broker = bool(await self._resources.broker.ping(timeout=3))
        healthy = mongodb and broker
        return web.json_response(
            {"status": "ok" if healthy else "unavailable", "mongodb": mongodb, "broker": broker},
            status=200 if healthy else 503,
        )

    async def metrics(self, request: web.Request) -> web.Response:
        text = logic.metrics_text(
            await self._stats.reports_by_status(),
            await self._stats.batches_by_status(),
            await self._stats.portal_events(),
        )
        return web.Response(
            body=text.encode(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )


def setup_ops(app: web.Application, resources: Resources) -> None:
    handlers = OpsHandlers(resources)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/metrics", handlers.metrics)
