"""Live batch progress: the gateway consumes `ReportStatusChanged` and wakes the server-sent
event streams of the batch pages showing that batch. Counts are always re-read from MongoDB;
an event only says "now is a good time"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import structlog
from aiohttp import web

from contracts.v1 import ReportStatusChanged
from services.gateway.queries import BatchQueries
from services.gateway.web import STILL_SIGNED_IN, sees_batch
from services.infra.consumer import subscribe
from services.infra.service import Resources

log = structlog.get_logger()

LIVE_REFRESH_SECONDS = 2.0


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


class LiveHandlers:
    def __init__(self, resources: Resources, events: BatchEvents) -> None:
        self._events = events
        self._batches = BatchQueries(resources.db)

    async def report_status_changed(self, message: ReportStatusChanged) -> None:
        if message.batch_id:
            self._events.notify(message.batch_id)

    async def give_up(self, message: ReportStatusChanged, reason: str) -> None:
        # Nothing to fail: a missed wake-up is covered by the streams' periodic refresh.
        log.warning("gateway.status_event_dropped", report_id=message.report_id, reason=reason)

    async def _summary(self, request: web.Request) -> dict[str, Any]:
        batch = await self._batches.get(request.match_info["batch_id"])
        summary = await self._batches.summary(batch["_id"]) if batch else None
        if summary is None or not sees_batch(request, batch):
            raise web.HTTPNotFound(text="No such batch.")
        return summary

    async def batch_counts(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self._summary(request))

    async def batch_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: a counts snapshot on every status change, and every 2 s anyway
        (another gateway replica may have consumed the event), while the session lasts."""
        batch_id = request.match_info["batch_id"]
        summary = await self._summary(request)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        still_signed_in, checked_at = request[STILL_SIGNED_IN], time.monotonic()
        with self._events.listen(batch_id) as woken:
            try:
                while not self._events.closing:
                    # The stream ends with its session (logout, timeout, a disabled user).
                    if time.monotonic() - checked_at >= LIVE_REFRESH_SECONDS:
                        if not await still_signed_in():
                            break
                        checked_at = time.monotonic()
                    await response.write(f"event: counts\ndata: {json.dumps(summary)}\n\n".encode())
                    try:
                        await asyncio.wait_for(woken.wait(), timeout=LIVE_REFRESH_SECONDS)
                    except TimeoutError:
                        pass
                    woken.clear()
                    summary = await self._batches.summary(batch_id) or summary
            except ConnectionResetError:
                pass  # the browser went away
        return response


def setup_live(app: web.Application, resources: Resources) -> None:
    events = BatchEvents()
    handlers = LiveHandlers(resources, events)
    subscribe(resources, ReportStatusChanged, on_give_up=handlers.give_up)(
        handlers.report_status_changed
    )
    app.router.add_get("/batches/{batch_id}/counts", handlers.batch_counts)
    app.router.add_get("/batches/{batch_id}/events", handlers.batch_events)

    async def end_streams(_: web.Application) -> None:
        events.close()

    app.on_shutdown.append(end_streams)
