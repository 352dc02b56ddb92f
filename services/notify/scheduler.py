"""The release scheduler: a loop in notify (the service that sends) that releases held
reports whose hold has run out, and sends again the NotifyPatient of a released report that
never moved on (its publish may have been lost after the release was stored).

Every replica runs it; each report is claimed with one conditional update, so two replicas
never release or re-drive the same report twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from contracts.v1 import NotifyPatient, ReportStatus, utcnow
from services.infra.broker import publish
from services.infra.documents import ReportDocument
from services.infra.periodic import Periodic
from services.infra.service import Resources

log = structlog.get_logger()

# A released report still not notified after this long has lost its NotifyPatient.
REDRIVE_AFTER = timedelta(seconds=60)


class ReleaseScheduler:
    def __init__(self, resources: Resources, every_seconds: float) -> None:
        self._resources = resources
        self._reports = resources.reports
        self._loop = Periodic("release", self.tick, every_seconds)

    async def tick(self, now: datetime | None = None) -> int:
        """One pass; how many reports this replica released or re-drove."""
        now = now or utcnow()
        acted = 0
        for report in await self._reports.due_holds(now):
            notify = NotifyPatient(report_id=report["_id"], correlation_id=report["correlation_id"])
            released = await self._reports.advance(
                report,
                ReportStatus.RELEASED,
                reason="the hold's time is up",
                where={"hold.until": {"$lte": now}},
                then=[notify],  # stored with the release (the outbox): it cannot be lost
            )
            if released:
                log.info("release.hold_ended", report_id=report["_id"])
                acted += 1
        for report in await self._reports.unsent_releases(now - REDRIVE_AFTER):
            if await self._reports.claim_redrive(report, now):
                log.warning("release.redriven", report_id=report["_id"])
                await self._notify(report)
                acted += 1
        return acted

    async def _notify(self, report: ReportDocument) -> None:
        await publish(
            self._resources.broker,
            NotifyPatient(report_id=report["_id"], correlation_id=report["correlation_id"]),
        )

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
