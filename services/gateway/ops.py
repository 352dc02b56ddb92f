"""Operations: liveness (`/healthz`, public, says nothing but "ok"), readiness (`/readyz`:
MongoDB and the broker) and Prometheus metrics (`/metrics`, prometheus-client's registry: the
process's own figures and the stored counts below).

Readiness and metrics answer only `Authorization: Bearer <RESULTFLOW_METRICS_TOKEN>`; with no
token configured they answer no one. Metrics are counted at most once per
`metrics_cache_seconds` per gateway process, however many scrapers ask (one counts, the
others wait for its figures), so a scrape never costs a scan of the collections.

The gateway also serves the same three, without a token, on its operations port like every
service (`health_port`, services/infra/health.py: never published; Prometheus and compose's
healthcheck use it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import structlog
from aiohttp import web

from contracts.v1 import utcnow
from services.gateway import logic
from services.gateway.report_files import INTEGRITY_FAILED
from services.gateway.web import json_error
from services.infra.audit import PATIENT
from services.infra.database import Database
from services.infra.dead_letters import DeadLetters
from services.infra.health import HealthServer, metrics_response
from services.infra.queue_depth import QueueDepths
from services.infra.report_status import stuck_query
from services.infra.service import Resources

log = structlog.get_logger()
T = TypeVar("T")


class Stats:
    def __init__(self, db: Database, queues: QueueDepths | None = None) -> None:
        self._db = db
        self._queues = queues

    async def _group(self, collection: str, field: str, match: dict[str, Any]) -> dict[str, int]:
        cursor = await self._db[collection].aggregate(
            [{"$match": match}, {"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
        )
        return {str(row["_id"]): int(row["n"]) async for row in cursor}

    async def metrics_text(self) -> str:
        return logic.metrics_text(
            await self._group("reports", "status", {}),
            await self._group("batches", "status", {}),
            await self._group("audit", "action", {"actor": PATIENT}),
            integrity_failures=await self._db.audit.count_documents({"action": INTEGRITY_FAILED}),
            stuck_counts=await self._group("reports", "status", stuck_query(utcnow())),
            dead_letter_counts=await DeadLetters(self._db).counts(),
            queue_depths=await self._queue_depths(),
        )

    async def _queue_depths(self) -> dict[str, tuple[int, int]] | None:
        if self._queues is None:
            return None
        try:
            return await self._queues.counts()
        except Exception as error:  # the broker down: the stored counts still go out
            log.warning("metrics.queue_depths_failed", error=type(error).__name__)
            return None


class Cached(Generic[T]):
    """The last value of `compute`, made again only when older than `ttl` seconds; callers
    arriving while it is being made wait for that one computation (single flight)."""

    def __init__(self, compute: Callable[[], Awaitable[T]], ttl: float) -> None:
        self._compute = compute
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._value: T | None = None
        self._made_at = 0.0
        self.computations = 0

    def _fresh(self) -> bool:
        return self._value is not None and time.monotonic() - self._made_at < self._ttl

    async def get(self) -> T:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    self._value = await self._compute()
                    self._made_at = time.monotonic()
                    self.computations += 1
        assert self._value is not None
        return self._value


class OpsHandlers:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._token = resources.settings.metrics_token
        self.queues = QueueDepths(resources.settings.amqp_url)
        self.metrics_cache = Cached(
            Stats(resources.db, self.queues).metrics_text, resources.settings.metrics_cache_seconds
        )
        self.health = HealthServer(
            resources.settings, "gateway", resources.readiness_checks(), self.metrics_cache.get
        )

    def _refusal(self, request: web.Request) -> web.Response | None:
        """None when the request carries the metrics token; else the answer to give."""
        if not self._token:
            return json_error(403, "forbidden", "No metrics token is configured.")
        given = request.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not logic.tokens_match(self._token, token.strip()):
            response = json_error(401, "unauthorized", "Send the metrics bearer token.")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return None

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: the process answers. Nothing about what it depends on."""
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if refused := self._refusal(request):
            return refused
        return await self.health.readyz(request)

    async def metrics(self, request: web.Request) -> web.Response:
        if refused := self._refusal(request):
            return refused
        return metrics_response((await self.metrics_cache.get()).encode())


def setup_ops(app: web.Application, resources: Resources) -> None:
    handlers = OpsHandlers(resources)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.metrics)

    async def operations_port(_: web.Application) -> AsyncIterator[None]:
        await handlers.health.start()
        yield
        await handlers.health.stop()
        await handlers.queues.close()

    app.cleanup_ctx.append(operations_port)
