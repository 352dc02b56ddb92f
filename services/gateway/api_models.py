"""The admin API's request and response bodies. The OpenAPI document is generated from these
(see `api.OPERATIONS`), so they are the API's one definition."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.gateway.actions import REQUEST_ID
from services.gateway.preview_models import PreviewView
from services.infra import second_check
from services.infra.documents import (
    BatchDocument,
    NotificationDocument,
    ReportDocument,
)


class ApiModel(BaseModel):
    """An answer: built from stored documents, whose other fields it leaves out."""

    model_config = ConfigDict(extra="ignore")


class RequestModel(BaseModel):
    """A request body: a field it does not know is a mistake worth naming."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(ApiModel):
    error: str = Field(description="What kind of error: not_found, conflict, invalid, ...")
    detail: Any = Field(None, description="What was wrong and what to do about it.")


class BatchCreated(ApiModel):
    batch_id: str


class RowProblem(ApiModel):
    row: int | str = Field(description="Sheet row number (or range) the problem is on.")
    reason: str


class BatchView(ApiModel):
    id: str
    filename: str
    status: str = Field(
        description="previewing, discarded, received, ingested, failed or cancelled"
    )
    uploaded_by: str
    uploaded_at: datetime
    rows_total: int
    rows_accepted: int
    rejected_rows: list[RowProblem]
    duplicates: list[RowProblem]
    failure_reason: str
    corrections: list[RowProblem] = Field(description="Rows that corrected earlier reports.")
    reports: dict[str, int] = Field(description="Reports of this batch by status.")
    profile: str | None = Field(None, description="The sheet profile chosen at upload.")
    preview: PreviewView | None = Field(
        None, description="Uploaded with a preview: what it would make (`previewing`)."
    )

    @classmethod
    def of(cls, batch: BatchDocument, counts: dict[str, int]) -> BatchView:
        duplicates = batch.get("duplicates")
        return cls(
            id=batch["_id"],
            filename=batch["filename"],
            status=batch["status"],
            uploaded_by=batch["uploaded_by"],
            uploaded_at=batch["uploaded_at"],
            rows_total=batch.get("rows_total", 0),
            rows_accepted=batch.get("rows_accepted", 0),
            rejected_rows=[RowProblem.model_validate(r) for r in batch.get("rejected_rows", [])],
            duplicates=[
                RowProblem.model_validate(d)
                for d in (duplicates if isinstance(duplicates, list) else [])
            ],
            failure_reason=batch.get("failure_reason", ""),
            corrections=[RowProblem.model_validate(c) for c in batch.get("corrections", [])],
            reports=counts,
            profile=batch.get("profile"),
            preview=batch.get("preview"),
        )


class BatchSummary(ApiModel):
    id: str
    filename: str
    status: str
    uploaded_by: str
    uploaded_at: datetime
    reports: dict[str, int] = Field(description="Reports of this batch by status.")


class BatchList(ApiModel):
    items: list[BatchSummary]
    page: int
    next_page: int | None


class ReportSummary(ApiModel):
    id: str
    version: int
    status: str
    patient_id: str
    name: str
    sample_date: str
    batch_id: str | None
    updated_at: datetime

    @classmethod
    def of(cls, report: ReportDocument) -> ReportSummary:
        patient = report.get("patient") or {}
        return cls(
            id=report["_id"],
            version=report.get("version", 1),
            status=report["status"],
            patient_id=str(patient.get("patient_id", "")),
            name=str(patient.get("name", "")),
            sample_date=str(report.get("sample_date", "")),
            batch_id=report.get("batch_id"),
            updated_at=report["updated_at"],
        )


class ReportList(ApiModel):
    items: list[ReportSummary]
    page: int
    next_page: int | None


class ResultView(ApiModel):
    test: str
    value: str
    unit: str
    reference_range: str
    flag: str


class HoldView(ApiModel):
    action: str = Field(description="hold (until `until`) or review (until released)")
    until: datetime | None
    reason: str
    rule: int | None = Field(description="Index of the release rule that held it; null: a default.")
    at: datetime = Field(description="When it was held.")


class StaffActionView(ApiModel):
    by: str
    at: datetime
    reason: str


class TimelineEntry(ApiModel):
    at: datetime | None
    what: str = Field(description="A status the report reached, or an audited action.")
    by: str = ""
    reason: str = ""


class NotificationView(ApiModel):
    purpose: str
    status: str
    provider: str
    provider_message_id: str | None
    attempts: int
    error: str | None
    created_at: datetime
    sent_at: datetime | None = None
    delivered_at: datetime | None = None

    @classmethod
    def of(cls, notification: NotificationDocument) -> NotificationView:
        return cls.model_validate(
            {key: notification.get(key) for key in cls.model_fields}  # type: ignore[misc]
        )


class ChangeView(ApiModel):
    what: str = Field(description="A test name, a patient field or `comments`.")
    before: str
    after: str


class ReportView(ReportSummary):
    results: list[ResultView]
    changes: list[ChangeView] = Field(description="What this version changed from the last.")
    comments: str
    language: str = Field("", description="The patient's language the SMS and portal use.")
    language_note: str = Field(
        "", description="Set when the given language is not one we send in (lab default used)."
    )
    rejected_rows: list[RowProblem]
    second_check: str = Field(
        "", description="What the link asks: date_of_birth, pin or sms_code ('': no link yet)."
    )
    second_check_note: str = Field(
        "", description="Why the link does not ask the lab's usual check (a PIN lab, no PIN)."
    )
    pdf_sha256: str | None
    hold: HoldView | None
    release: StaffActionView | None
    withdrawal: StaffActionView | None
    versions: list[ReportSummary] = Field(description="Every version of this report, oldest first.")
    timeline: list[TimelineEntry]
    notifications: list[NotificationView]

    @classmethod
    def whole(
        cls,
        report: ReportDocument,
        versions: list[ReportDocument],
        notifications: list[NotificationDocument],
        timeline: list[dict[str, Any]],
    ) -> ReportView:
        return cls.model_validate(
            {
                **ReportSummary.of(report).model_dump(),
                "results": report.get("results", []),
                "changes": report.get("changes", []),
                "comments": report.get("comments", ""),
                "language": (report.get("patient") or {}).get("language", ""),
                "language_note": report.get("language_note", ""),
                "rejected_rows": report.get("rejected_rows", []),
                **second_check_fields(report),
                "pdf_sha256": report.get("pdf_sha256"),
                "hold": report.get("hold"),
                "release": report.get("release"),
                "withdrawal": report.get("withdrawal"),
                "versions": [ReportSummary.of(v).model_dump() for v in versions],
                "timeline": timeline,
                "notifications": [NotificationView.of(n).model_dump() for n in notifications],
            }
        )


def second_check_fields(report: ReportDocument) -> dict[str, str]:
    """The check the report's link asks and why, as the report page and API show them."""
    access = report.get("access")
    if access is None:
        return {"second_check": "", "second_check_note": ""}
    check = second_check.check_of(access).value
    return {"second_check": check, "second_check_note": access.get("check_note", "")}


class ReportState(ApiModel):
    id: str
    version: int
    status: str

    @classmethod
    def of(cls, report: ReportDocument) -> ReportState:
        return cls(id=report["_id"], version=report.get("version", 1), status=report["status"])


class ActionBody(RequestModel):
    reason: str = Field(
        "",
        max_length=500,
        description="Why; required to withdraw, and to release a report that needs attention.",
    )


class TextAgainBody(RequestModel):
    request_id: str | None = Field(
        None,
        pattern=REQUEST_ID.pattern,
        description="Your id for this request: sending it again sends no second SMS. "
        "Without one, every call is a new request.",
    )
    phone: str = Field("", max_length=40, description="A corrected mobile number (optional).")


class BatchActionBody(RequestModel):
    reason: str = Field(
        "",
        max_length=500,
        description="Required to cancel; to release held "
        "reports, also releases those needing attention.",
    )


class LeftAlone(ApiModel):
    id: str
    detail: str


class BatchActionResult(ApiModel):
    done: list[str] = Field(description="Reports the action changed.")
    left: list[LeftAlone] = Field(description="Reports left as they were, and why.")


class ReleaseMany(RequestModel):
    ids: list[str] = Field(min_length=1, max_length=500)
    reason: str = Field("", max_length=500)


class ReleaseOutcome(ApiModel):
    id: str
    released: bool
    detail: str = ""


class ReleaseManyResult(ApiModel):
    items: list[ReleaseOutcome]


class RulesSaved(ApiModel):
    updated_at: datetime


class AuditEntryView(ApiModel):
    seq: int | None = Field(description="Place in the hash chain; null: from before the chain.")
    at: datetime | None = Field(description="UTC, to the millisecond.")
    actor: str = Field(description="patient, system, admin:<username> or cli:<os user>")
    role: str = Field(description="A staff role, patient, system, operator or staff.")
    action: str
    object: str = Field(description="The report, batch or user acted on.")
    outcome: str = Field(description="success, failure or refused")
    client: str = Field(description="The client's address (behind trusted proxies: theirs).")
    detail: dict[str, Any]
    hash: str = Field(description="SHA-256 of the entry and the hash before it.")


class AuditList(ApiModel):
    items: list[AuditEntryView] = Field(description="Newest first.")
    page: int
    next_page: int | None
