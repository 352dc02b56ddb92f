"""What lab staff can do to a report, whichever door they come through (a dashboard form or
the admin API): each action checks the report's state, changes it with one conditional
update, is audited with who, when and why, and says plainly why it was refused. Changing the
release rules is audited the same way. Batch-wide actions: `batch_actions`.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import structlog

from contracts.v1 import ConvertReport, Message, NotifyPatient, RenderReport, ReportStatus, utcnow
from services.gateway.queries import NotificationQueries
from services.infra import phones, report_status
from services.infra.audit import Audit, staff
from services.infra.broker import publish
from services.infra.documents import (
    MAYBE_SENT,
    AuditOutcome,
    ReportDocument,
    StaffActionDocument,
)
from services.infra.errors import ReportNotFoundError
from services.infra.release_rules import ReleaseRules, ReleaseRuleStore
from services.infra.report_status import FINAL, TEXTABLE_AGAIN, WAITING, can_move
from services.infra.service import Resources

log = structlog.get_logger()

MAX_REASON = 500
# What each staff move is recorded as on the report, and in the audit trail.
AUDITED_AS = {
    "release": "report.released",
    "withdrawal": "report.withdrawn",
    "retry": "report.retried",
}
REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")  # also the API model's pattern


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
        self._notifications = NotificationQueries(resources.db)

    async def get(self, report_id: str) -> ReportDocument:
        try:
            return await self._reports.get(report_id)
        except ReportNotFoundError:
            raise ActionRefused(404, f"There is no report {report_id}.") from None

    async def release(
        self, report_id: str, user: str, reason: str, client: dict[str, Any]
    ) -> ReportDocument:
        """Let a waiting report go out. One that is incomplete needs a reason."""
        async with self._refusal_audited("release", report_id, user, reason, client):
            return await self._release(report_id, user, reason, client)

    async def _release(
        self, report_id: str, user: str, reason: str, client: dict[str, Any]
    ) -> ReportDocument:
        report = await self.get(report_id)
        status = ReportStatus(report["status"])
        if status not in WAITING:
            raise ActionRefused(
                409,
                "Only a held report or one that needs attention can be released; "
                f"this one is {status.value}.",
            )
        reason = clean(reason)
        if status is ReportStatus.NEEDS_ATTENTION and not reason:
            raise ActionRefused(400, "This report is incomplete: say why it may go out as it is.")
        notify = NotifyPatient(report_id=report_id, correlation_id=report["correlation_id"])
        released = ReportStatus.RELEASED
        await self._move(report, released, "release", user, reason, client, then=notify)
        return await self._reports.get(report_id)

    async def withdraw(
        self, report_id: str, user: str, reason: str, client: dict[str, Any]
    ) -> ReportDocument:
        """Stop a report for good: nothing more is sent and its link stops working."""
        async with self._refusal_audited("withdraw", report_id, user, reason, client):
            return await self._withdraw(report_id, user, reason, client)

    async def _withdraw(
        self, report_id: str, user: str, reason: str, client: dict[str, Any]
    ) -> ReportDocument:
        report = await self.get(report_id)
        status = ReportStatus(report["status"])
        if status in FINAL:
            raise ActionRefused(409, f"This report is already {status.value}.")
        reason = clean(reason)
        if not reason:
            raise ActionRefused(400, "Say why the report is withdrawn.")
        await self._move(report, ReportStatus.WITHDRAWN, "withdrawal", user, reason, client)
        return await self._reports.get(report_id)

    async def text_again(
        self,
        report_id: str,
        user: str,
        client: dict[str, Any],
        *,
        request_id: str,
        phone: str = "",
        why: str = "resend",
    ) -> ReportDocument:
        """Send the patient a new SMS with a new link (the old link stops working, a locked
        one is unlocked), to a corrected number when one is given. One SMS per `request_id`,
        however often the same request arrives (a double click, a retried API call)."""
        async with self._refusal_audited(why, report_id, user, "", client):
            return await self._text_again(report_id, user, client, request_id, phone, why)

    async def _text_again(
        self,
        report_id: str,
        user: str,
        client: dict[str, Any],
        request_id: str,
        phone: str,
        why: str,
    ) -> ReportDocument:
        report = await self.get(report_id)
        status = ReportStatus(report["status"])
        if status not in TEXTABLE_AGAIN or not await self._texted_before(report):
            raise ActionRefused(
                409,
                f"Only a report already texted can be texted again; this one is {status.value}"
                + (" (use Retry)." if status is ReportStatus.FAILED else "."),
            )
        if not REQUEST_ID.fullmatch(request_id):
            raise ActionRefused(400, "The request id must be 8-64 letters, digits, - or _.")
        detail: dict[str, Any] = {"request_id": request_id, **client}
        if phone.strip():
            try:
                number = phones.normalise_phone(
                    phone.strip(), self._resources.settings.default_region
                )
            except phones.PhoneError as error:
                raise ActionRefused(400, str(error)) from None
            if number != report["patient"]["phone"]:
                await self._reports.set_phone(report_id, number)
                detail["phone_changed"] = True
        await self._audit.write(staff(user), f"report.{why}", report_id, detail)
        await self._send(
            NotifyPatient(
                report_id=report_id,
                correlation_id=report["correlation_id"],
                request_id=request_id,
            )
        )
        return await self._reports.get(report_id)

    async def retry(self, report_id: str, user: str, client: dict[str, Any]) -> ReportDocument:
        """Run a failed report again from the stage that failed."""
        async with self._refusal_audited("retry", report_id, user, "", client):
            return await self._retry(report_id, user, client)

    async def _retry(self, report_id: str, user: str, client: dict[str, Any]) -> ReportDocument:
        report = await self.get(report_id)
        if not report.get("sms_due") and report_status.is_stuck(
            ReportStatus(report["status"]), report["updated_at"], utcnow()
        ):
            return await self._redrive(report, user, client)
        if report["status"] != ReportStatus.FAILED:
            raise ActionRefused(
                409,
                f"Only a failed or stuck report can be retried; this one is {report['status']}.",
            )
        if await self._texted_before(report):
            raise ActionRefused(
                409, "The SMS may have reached the patient; use Resend to text them again."
            )
        command: Message
        ids = {"report_id": report_id, "correlation_id": report["correlation_id"]}
        if not report.get("docx_file_id"):
            stage, command = ReportStatus.RECEIVED, RenderReport(**ids)
        elif not report.get("pdf_file_id"):
            stage, command = ReportStatus.RENDERED, ConvertReport(**ids)
        else:
            stage, command = ReportStatus.CONVERTED, NotifyPatient(**ids)
        fields = {"failure_reason": ""}
        await self._move(report, stage, "retry", user, "", client, fields, then=command)
        return await self._reports.get(report_id)

    async def _redrive(
        self, report: ReportDocument, user: str, client: dict[str, Any]
    ) -> ReportDocument:
        """Send a stuck report's command for the stage it stopped at again. Each stage does
        nothing twice (its updates are conditional), so a command that was only slow is
        harmless to repeat."""
        ids = {"report_id": report["_id"], "correlation_id": report["correlation_id"]}
        command: Message = {
            ReportStatus.RECEIVED: RenderReport,
            ReportStatus.RENDERED: ConvertReport,
        }.get(ReportStatus(report["status"]), NotifyPatient)(**ids)
        detail = {"stage": report["status"], **client}
        await self._audit.write(staff(user), "report.stuck_retried", report["_id"], detail)
        await self._send(command)
        return report

    async def save_release_rules(
        self, rules: ReleaseRules, user: str, client: dict[str, Any]
    ) -> datetime:
        updated_at = await self._rules.put(self._resources.settings.lab_id, rules, user)
        await self._audit.write(
            staff(user),
            "release_rules.changed",
            None,
            {"rules": len(rules.rules), **client},
            object=self._resources.settings.lab_id,
        )
        return updated_at

    @contextlib.asynccontextmanager
    async def _refusal_audited(
        self, attempt: str, report_id: str, user: str, reason: str, client: dict[str, Any]
    ) -> AsyncIterator[None]:
        """A refused attempt is audited too (`report.<attempt>_refused`), with why."""
        try:
            yield
        except ActionRefused as refused:
            detail = {"reason": clean(reason), "refused": refused.reason, **client}
            await self._audit.write(
                staff(user),
                f"report.{attempt}_refused",
                report_id,
                detail,
                outcome=AuditOutcome.REFUSED,
            )
            raise

    async def _texted_before(self, report: ReportDocument) -> bool:
        return any(
            n["status"] in MAYBE_SENT for n in await self._notifications.for_report(report["_id"])
        )

    async def _send(self, command: Message) -> None:
        try:
            await publish(self._resources.broker, command)
        except Exception:
            # The action is stored all the same; a release is re-sent by notify's scheduler,
            # other work that never moved shows as stuck.
            log.warning("staff_action.publish_failed", routing_key=command.routing_key)

    async def _move(
        self,
        report: ReportDocument,
        to: ReportStatus,
        record: str,
        user: str,
        reason: str,
        client: dict[str, Any],
        extra: dict[str, Any] | None = None,
        then: Message | None = None,
    ) -> None:
        """Move the report (with `then`, the command it calls for, in one transaction: the
        outbox publishes it), audited."""
        if not can_move(ReportStatus(report["status"]), to):
            raise ActionRefused(409, f"A {report['status']} report cannot become {to.value}.")
        action: StaffActionDocument = {"by": user, "at": utcnow(), "reason": reason}
        said = reason or f"by {user}"
        fields = {record: action, **(extra or {})}
        commands = [then] if then else []
        if not await self._reports.advance(report, to, fields=fields, reason=said, then=commands):
            current = await self._reports.get(report["_id"])
            raise ActionRefused(
                409, f"The report changed meanwhile (it is now {current['status']}); reload."
            )
        await self._audit.write(
            staff(user), AUDITED_AS[record], report["_id"], {"reason": reason, **client}
        )
        log.info("report.staff_action", report_id=report["_id"], status=to.value)


def clean(reason: str) -> str:
    return " ".join(reason.split())[:MAX_REASON]


def new_request_id() -> str:
    """What a form carries so that submitting it twice asks once."""
    return uuid.uuid4().hex
