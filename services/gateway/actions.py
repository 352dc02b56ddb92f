"""What lab staff can do, whichever door they come through (a dashboard form or the admin
API): each action on a report checks its state, changes it with one conditional update, is
audited with who, when and why, and says plainly why it was refused. Changing the release
rules is audited the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from contracts.v1 import NotifyPatient, ReportStatus, utcnow
from services.infra.audit import Audit, staff
from services.infra.broker import publish
from services.infra.documents import ReportDocument, StaffActionDocument
from services.infra.errors import ReportNotFoundError
from services.infra.release_rules import ReleaseRules, ReleaseRuleStore
from services.infra.report_status import FINAL, WAITING, can_move
from services.infra.service import Resources

log = structlog.get_logger()

MAX_REASON = 500


class ActionRefused(Exception):
    """The action cannot be done: `status` is the HTTP answer (404, 400 or 409), the text
    says why, for staff."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class StaffActions:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._reports = resources.reports
        self._audit = Audit(resources.db)
        self._rules = ReleaseRuleStore(resources.db)

    async def _get(self, report_id: str) -> ReportDocument:
        try:
            return await self._reports.get(report_id)
        except ReportNotFoundError:
            raise ActionRefused(404, f"There is no report {report_id}.") from None

    async def release(
        self, report_id: str, user: str, reason: str, client: dict[str, Any]
    ) -> ReportDocument:
        """Let a waiting report go out. One that is incomplete needs a reason."""
        report = await self._get(report_id)
        status = ReportStatus(report["status"])
        if status not in WAITING:
            raise ActionRefused(
                409,
                f"Only a held report or one that needs attention can be released; "
                f"this one is {status.value}.",
            )
        reason = _clean(reason)
        if status is ReportStatus.NEEDS_ATTENTION and not reason:
            raise ActionRefused(400, "This report is incomplete: say why it may go out as it is.")
        await self._move(report, ReportStatus.RELEASED, "release", user, reason, client)
        try:
            await publish(
                self._resources.broker,
                NotifyPatient(report_id=report["_id"], correlation_id=report["correlation_id"]),
            )
        except Exception:
            # Released all the same: notify's scheduler re-sends a release that never moved.
            log.warning("report.release_publish_failed", report_id=report["_id"])
        return await self._reports.get(report_id)

    async def withdraw(
        self, report_id: str, user: str, reason: str, client: dict[str, Any]
    ) -> ReportDocument:
        """Stop a report for good: nothing more is sent and its link stops working."""
        report = await self._get(report_id)
        status = ReportStatus(report["status"])
        if status in FINAL:
            raise ActionRefused(409, f"This report is already {status.value}.")
        reason = _clean(reason)
        if not reason:
            raise ActionRefused(400, "Say why the report is withdrawn.")
        await self._move(report, ReportStatus.WITHDRAWN, "withdrawal", user, reason, client)
        return await self._reports.get(report_id)

    async def save_release_rules(
        self, rules: ReleaseRules, user: str, client: dict[str, Any]
    ) -> datetime:
        updated_at = await self._rules.put(self._resources.settings.lab_id, rules, user)
        await self._audit.write(
            staff(user), "release_rules.changed", None, {"rules": len(rules.rules), **client}
        )
        return updated_at

    async def _move(
        self,
        report: ReportDocument,
        to: ReportStatus,
        record: str,
        user: str,
        reason: str,
        client: dict[str, Any],
    ) -> None:
        if not can_move(ReportStatus(report["status"]), to):
            raise ActionRefused(409, f"A {report['status']} report cannot become {to.value}.")
        action: StaffActionDocument = {"by": user, "at": utcnow(), "reason": reason}
        said = reason or f"by {user}"
        if not await self._reports.advance(report, to, fields={record: action}, reason=said):
            current = await self._reports.get(report["_id"])
            raise ActionRefused(
                409, f"The report changed meanwhile (it is now {current['status']}); reload."
            )
        await self._audit.write(
            staff(user), f"report.{to.value}", report["_id"], {"reason": reason, **client}
        )
        log.info("report.staff_action", report_id=report["_id"], status=to.value)


def _clean(reason: str) -> str:
    return " ".join(reason.split())[:MAX_REASON]
