"""A background loop that does one pass every so often (holds whose time is up, reminders
due): a failed pass is logged and the next one tries again. What a pass claims it claims
atomically, so any number of replicas may run the same loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger()


class Periodic:
    def __init__(self, name: str, tick: Callable[[], Awaitable[object]], every: float) -> None:
        self._name = name
        self._tick = tick
        self._every = every
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except Exception:
                # A database or broker hiccup: the next pass tries again.
                log.exception(f"{self._name}.tick_failed")
            await asyncio.sleep(self._every)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
