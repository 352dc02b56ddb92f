"""Nothing stays stuck because a message was lost between a write and its publish: a loop
that sends again the command of a report that has not moved on from received, rendered or
converted for longer than its stage allows (`report_status.STUCK_AFTER`), and the
IngestBatch of an upload nobody has read. Notify re-drives released reports itself.

Each stage does nothing twice (its updates are conditional), so a command that was only
slow is harmless to repeat. Each report or batch is claimed with one conditional update, so
gateway replicas never send it twice in one turn; after `MOST_REDRIVES` automatic tries it
stays stuck, visible on the dashboard, for a person to decide.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import structlog
from aiohttp import web

from contracts.v1 import ConvertReport, Message, NotifyPatient, RenderReport, utcnow
from contracts.v1 import ReportStatus as S
from services.gateway.uploads import ingest_command
from services.infra.batches import Batches
from services.infra.broker import publish
from services.infra.periodic import Periodic
from services.infra.report_status import STUCK_AFTER
from services.infra.service import Resources

log = structlog.get_logger()

MOST_REDRIVES = 3
EVERY_SECONDS = 60.0
COMMANDS: dict[S, type[RenderReport | ConvertReport | NotifyPatient]] = {
    S.RECEIVED: RenderReport,
    S.RENDERED: ConvertReport,
    S.CONVERTED: NotifyPatient,
}


class Redriver:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._batches = Batches(resources.db)
        self.loop = Periodic("redrive", self.tick, EVERY_SECONDS)

    async def tick(self, now: datetime | None = None) -> int:
        """One pass; how many commands this replica sent again."""
        now = now or utcnow()
        sent = 0
        reports = self._resources.reports
        for report in await reports.stuck_to_redrive(now, frozenset(COMMANDS), MOST_REDRIVES):
            if await reports.claim_redrive(report, now):
                ids = {"report_id": report["_id"], "correlation_id": report["correlation_id"]}
                stage_command = COMMANDS[S(report["status"])](**ids)
                await self._send(stage_command, report_id=report["_id"], stage=report["status"])
                sent += 1
        before = now - STUCK_AFTER[S.RECEIVED]
        for batch in await self._batches.unread(before, MOST_REDRIVES):
            if await self._batches.claim_redrive(batch, now):
                ingest = ingest_command(batch)
                await self._send(ingest, batch_id=batch["_id"], stage=batch["status"])
                sent += 1
        return sent

    async def _send(self, command: Message, **ids: str) -> None:
        log.warning("redrive.sent", command=command.routing_key, **ids)
        await publish(self._resources.broker, command)


def setup_redriver(app: web.Application, resources: Resources) -> None:
    """Runs while the app runs; set up after the broker's connection (it stops first)."""
    redriver = Redriver(resources)

    async def running(_: web.Application) -> AsyncIterator[None]:
        await redriver.loop.start()
        yield
        await redriver.loop.stop()

    app.cleanup_ctx.append(running)
