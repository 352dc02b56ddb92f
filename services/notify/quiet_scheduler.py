"""The quiet-hours loop: a loop in notify that, once quiet hours (`RESULTFLOW_QUIET_HOURS`)
are over, sends the SMS they held back, longest waiting first, one after the other.

Every replica runs it (only when quiet hours are set). A report's held SMS is claimed with
one conditional update that pushes its due time forward as a lease: should the replica die
mid-send, another takes it over when the lease runs out, and the send-once `notifications`
record keeps the patient from getting it twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from contracts.v1 import utcnow
from services.infra.errors import PermanentError
from services.infra.periodic import Periodic
from services.infra.service import Resources
from services.notify import quiet_hours
from services.notify.handlers import NotifyHandlers

log = structlog.get_logger()

# How long a replica owns a held SMS it took; after that another may take it over.
LEASE = timedelta(minutes=5)


class QuietHoursScheduler:
    def __init__(self, resources: Resources, handlers: NotifyHandlers) -> None:
        settings = resources.settings
        self._reports = resources.reports
        self._handlers = handlers
        self._quiet = quiet_hours.parse(settings.quiet_hours, settings.time_zone)
        self._loop = Periodic("quiet_hours", self.tick, settings.quiet_hours_poll_seconds)

    async def tick(self, now: datetime | None = None) -> int:
        """One pass; how many held reports this replica sent on."""
        now = now or utcnow()
        if quiet_hours.quiet_until(now, self._quiet) is not None:
            return 0
        sent = 0
        for report in await self._reports.due_sms(now):
            if not await self._reports.claim_due_sms(report, now + LEASE):
                continue  # another replica took it
            requests = list(report["sms_due"]["requests"])
            for request in requests:
                try:
                    await self._handlers.dispatch(report["_id"], request or None)
                except PermanentError as error:
                    # What the consumer would do with a message that cannot succeed.
                    await self._reports.fail(report["_id"], str(error))
            await self._reports.sms_sent_after_quiet(report["_id"], requests)
            log.info("quiet_hours.sent", report_id=report["_id"], sends=len(requests))
            sent += 1
        return sent

    async def start(self) -> None:
        if self._quiet is not None:
            await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
