"""What lab staff can do to a whole batch: retry every failed report, release every held
one, or cancel it (every report of it not yet sent is withdrawn; those already sent are
listed). Each report goes through the same action as on its own (`actions`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts.v1 import ReportStatus
from services.gateway.actions import ActionRefused, StaffActions, clean
from services.gateway.queries import BatchQueries
from services.infra.audit import Audit, staff
from services.infra.batches import Batches
from services.infra.documents import BatchDocument, BatchStatus, ReportDocument
from services.infra.report_status import FINAL
from services.infra.service import Resources

# Sent already: a cancel cannot take these back (withdraw one by one to revoke its link).
SENT = frozenset({ReportStatus.NOTIFIED, ReportStatus.DELIVERED})


@dataclass
class BatchOutcome:
    """Which reports the action changed, and why each other one was left as it was."""

    done: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)  # (report id, why)


class BatchActions:
    def __init__(self, resources: Resources) -> None:
        self._actions = StaffActions(resources)
        self._queries = BatchQueries(resources.db)
        self._batches = Batches(resources.db)
        self._audit = Audit(resources.db)

    async def _batch(self, batch_id: str) -> BatchDocument:
        batch = await self._queries.get(batch_id)
        if batch is None:
            raise ActionRefused(404, f"There is no batch {batch_id}.")
        return batch

    async def retry_failed(self, batch_id: str, user: str, client: dict[str, Any]) -> BatchOutcome:
        await self._batch(batch_id)
        reports = await self._queries.reports(batch_id, [ReportStatus.FAILED])
        return await self._each(reports, lambda r: self._actions.retry(r["_id"], user, client))

    async def release_held(
        self, batch_id: str, user: str, reason: str, client: dict[str, Any]
    ) -> BatchOutcome:
        """Release the batch's held reports, and those needing attention when a reason says
        why they may go out incomplete."""
        await self._batch(batch_id)
        statuses = [ReportStatus.HELD] + ([ReportStatus.NEEDS_ATTENTION] if clean(reason) else [])
        reports = await self._queries.reports(batch_id, statuses)
        return await self._each(
            reports, lambda r: self._actions.release(r["_id"], user, reason, client)
        )

    async def cancel(
        self, batch_id: str, user: str, reason: str, client: dict[str, Any]
    ) -> BatchOutcome:
        """Withdraw every report of the batch not yet sent; the batch is marked cancelled, so
        an ingest still running withdraws what it makes too."""
        batch = await self._batch(batch_id)
        if not clean(reason):
            raise ActionRefused(400, "Say why the batch is cancelled.")
        if batch["status"] == BatchStatus.CANCELLED:
            raise ActionRefused(409, "This batch is cancelled already.")
        await self._batches.cancel(batch_id, user, clean(reason))
        await self._audit.write(
            staff(user),
            "batch.cancelled",
            None,
            {"batch_id": batch_id, "reason": clean(reason), **client},
            object=batch_id,
        )
        outcome = BatchOutcome()
        for report in await self._queries.reports(batch_id):
            status = ReportStatus(report["status"])
            if status in FINAL:
                continue
            if status in SENT:
                outcome.left.append((report["_id"], f"already sent ({status.value})"))
                continue
            await self._one(
                report, outcome, lambda r: self._actions.withdraw(r["_id"], user, reason, client)
            )
        return outcome

    async def _each(self, reports: list[ReportDocument], act: Any) -> BatchOutcome:
        outcome = BatchOutcome()
        for report in reports:
            await self._one(report, outcome, act)
        return outcome

    @staticmethod
    async def _one(report: ReportDocument, outcome: BatchOutcome, act: Any) -> None:
        try:
            await act(report)
            outcome.done.append(report["_id"])
        except ActionRefused as refused:
            outcome.left.append((report["_id"], refused.reason))
