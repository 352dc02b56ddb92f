"""The gateway's message consumer (live batch progress) and its health and metrics endpoints.

Admin pages live in `admin.py`, the patient portal in `portal.py`, provider webhooks in
`webhooks.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator

import structlog
from aiohttp import web

from contracts.v1 import ReportStatusChanged
from services.gateway import logic
from services.gateway.adapters import Stats
from services.infra.service import Resources

log = structlog.get_logger()


class BatchEvents:
    """Wakes the live streams of a batch page when one of its reports changes status."""

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self.closing = False

    @contextlib.contextmanager
    def listen(self, batch_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters[batch_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(batch_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[batch_id]

    def notify(self, batch_id: str) -> None:
        for event in self._waiters.get(batch_id, ()):
            event.set()

    def close(self) -> None:
        """Let every open stream finish (on shutdown)."""
        self.closing = True
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()


class GatewayHandlers:
    def __init__(self, resources: Resources, events: BatchEvents) -> None:
        self._resources = resources
        self._events = events
        self._stats = Stats(resources.db)

    async def report_status_changed(self, message: ReportStatusChanged) -> None:
        # Streams re-read counts from MongoDB; the event only says "now is a good time".
        if message.batch_id:
            self._events.notify(message.batch_id)

    async def give_up(self, message: ReportStatusChanged, reason: str) -> None:
        # Nothing to fail: a missed wake-up is covered by the streams' periodic refresh.
        log.warning("gateway.status_event_dropped", report_id=message.report_id, reason=reason)

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
