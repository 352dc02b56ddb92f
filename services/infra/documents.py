"""The documents more than one service reads or writes: one typed definition each.

Every reader and writer of these collections uses these types; docs/data-model.md describes
the fields. Status strings come from the enums here (and `contracts.v1.ReportStatus`), never
from literals. Which module writes which collection: `services.infra.owners.OWNERS`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict, cast

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

    from services.infra.database import Database


class BatchStatus(StrEnum):
    """Where an uploaded sheet is: received (stored, not read yet), ingested (its reports are
    on their way), failed (nothing of it will be reported) or cancelled by staff (none of its
    reports not yet sent will be)."""

    PREVIEWING = "previewing"  # read only to show what it would make, until staff confirm
    DISCARDED = "discarded"  # a preview staff did not confirm: nothing of it made
    RECEIVED = "received"
    INGESTED = "ingested"
    FAILED = "failed"
    CANCELLED = "cancelled"


class NotificationStatus(StrEnum):
    """Where one SMS is. `claimed`: an attempt owns the record and has not called the provider
    yet (if it dies, nothing was sent). `sending`: it is (or was) talking to the provider (if
    it dies, the outcome is unknown). `unknown`: never resent, a person must check."""

    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    UNKNOWN = "unknown"


# The SMS left (or may have left) the provider: never "retry" it, only send a new one.
MAYBE_SENT = frozenset(
    {
        NotificationStatus.SENDING,
        NotificationStatus.SENT,
        NotificationStatus.DELIVERED,
        NotificationStatus.UNDELIVERED,
        NotificationStatus.UNKNOWN,
    }
)


# --- reports --------------------------------------------------------------------------------


class HistoryEntry(TypedDict):
    status: str  # a ReportStatus value
    at: datetime
    reason: str


class SheetSource(TypedDict):
    kind: Literal["sheet"]
    batch_id: str
    rows: list[int]  # sheet row numbers
    at: NotRequired[datetime]  # when the sheet was uploaded: a later upload wins


class LisSource(TypedDict):
    kind: Literal["lis"]
    message_id: str
    accession: str
    at: NotRequired[datetime]  # when the LIS made the message: a later message wins


class PatientFields(TypedDict):
    patient_id: str
    name: str
    date_of_birth: str  # YYYY-MM-DD
    sex: str  # F, M or U
    phone: str  # E.164
    language: NotRequired[str]  # a shipped one (`services.infra.languages`): SMS, portal, template


class ResultFields(TypedDict):
    test: str
    value: str
    unit: str
    reference_range: str
    flag: str  # a contracts.v1.Flag value


class RejectedRowEntry(TypedDict):
    row: int
    reason: str


class AccessDocument(TypedDict):
    """A report's patient link: the SHA-256 of the token in the SMS, never the token."""

    token_hash: str
    expires_at: datetime
    failed_attempts: int
    locked: bool
    opened_at: NotRequired[datetime | None]  # first time the patient saw the report
    reminder_at: NotRequired[datetime | None]  # when its one reminder SMS was claimed
    reminder_token_hash: NotRequired[str]  # the reminder's link, which opens the same report
    check: NotRequired[str]  # a second_check.SecondCheck value; none: date_of_birth
    check_note: NotRequired[str]  # why it is not the lab's usual check (a PIN lab, no PIN)


class HoldDocument(TypedDict):
    """Why a converted report waits: a release rule (or a critical value) held it."""

    action: str  # a ReleaseAction value: "hold" (until `until`) or "review" (until released)
    until: datetime | None
    reason: str
    rule: int | None  # index of the deciding rule in the lab's list; None: a default
    at: datetime


class SmsDueDocument(TypedDict):
    """A report's SMS held back by quiet hours: when it may go, since when it waits (held
    SMS go out in that order) and which sends wait ("" the first SMS, else a staff request
    id). While one of the notify loops sends it, `at` is pushed forward as its lease."""

    at: datetime
    since: datetime
    requests: list[str]


class ChangeEntry(TypedDict):
    """One difference between a report version and the one it replaced."""

    what: str  # a test name, "patient phone", "comments"
    before: str
    after: str


class StaffActionDocument(TypedDict):
    """Who released or withdrew a report, when, and why."""

    by: str
    at: datetime
    reason: str


class ReportDocument(TypedDict):
    """`reports`: one document per patient report version."""

    _id: str
    lab_id: str
    batch_id: str | None
    source: SheetSource | LisSource
    source_key: str
    version: int
    correlation_id: str
    patient: PatientFields
    language_note: NotRequired[str]  # for staff: the patient's language was not usable
    sample_date: str  # YYYY-MM-DD
    results: list[ResultFields]
    comments: str
    # Rows of the same patient and sample that were rejected: never sent without a person.
    rejected_rows: list[RejectedRowEntry]
    template: str
    template_version: NotRequired[int]  # the version rendered with (0: the shipped default)
    status: str  # a ReportStatus value
    history: list[HistoryEntry]
    created_at: datetime
    updated_at: datetime
    docx_file_id: NotRequired[str]
    pdf_file_id: NotRequired[str]
    pdf_sha256: NotRequired[str]
    access: NotRequired[AccessDocument]
    failure_reason: NotRequired[str]
    hold: NotRequired[HoldDocument]
    release: NotRequired[StaffActionDocument]
    withdrawal: NotRequired[StaffActionDocument]
    retry: NotRequired[StaffActionDocument]
    pin_hash: NotRequired[str]  # keyed hash of the receipt's PIN (`second_check`), never the PIN
    redriven_at: NotRequired[datetime]
    sms_due: NotRequired[SmsDueDocument]  # the SMS waits for quiet hours to end
    # Corrections: the version this one replaced, what changed, and what replaced this one.
    previous_id: NotRequired[str]
    changes: NotRequired[list[ChangeEntry]]
    superseded_by: NotRequired[str]


# --- batches --------------------------------------------------------------------------------


class DuplicateEntry(TypedDict):
    row: str  # "7" or "7–9"
    reason: str


class CorrectionEntry(TypedDict):
    row: str  # "7" or "7–9"
    reason: str  # which version replaced which, and what changed (names only)


class BatchDocument(TypedDict):
    """`batches`: one uploaded sheet."""

    _id: str
    lab_id: str
    filename: str
    file_id: str
    uploaded_by: str
    uploaded_at: datetime
    correlation_id: str
    status: str  # a BatchStatus value
    rows_total: int
    rows_accepted: int
    rejected_rows: list[RejectedRowEntry]
    reports_created: int
    duplicates: list[DuplicateEntry] | int
    failure_reason: str
    corrections: NotRequired[list[CorrectionEntry]]
    cancellation: NotRequired[StaffActionDocument]
    ingested_at: NotRequired[datetime]
    failed_at: NotRequired[datetime]
    redriven_at: NotRequired[datetime]  # its IngestBatch sent again (`gateway.redriver`)
    redrives: NotRequired[int]
    profile: NotRequired[str | None]  # the sheet profile chosen at upload
    template: NotRequired[str | None]  # the report template chosen at upload, for every report
    preview: NotRequired[dict[str, Any]]  # what it would make (`ingest.preview`)
    confirmation: NotRequired[StaffActionDocument]  # its preview confirmed or discarded


# --- notifications, outbox, audit -----------------------------------------------------------


class NotificationDocument(TypedDict):
    """`notifications`: one SMS that may ever be sent, unique per (report, version, purpose)."""

    _id: str
    report_id: str
    version: int
    purpose: str
    to: str
    provider: str
    status: str  # a NotificationStatus value
    provider_message_id: str | None
    error: str | None
    attempts: int
    heartbeat_at: datetime
    created_at: datetime
    updated_at: datetime
    refused: NotRequired[bool]
    provider_status: NotRequired[str]
    sent_at: NotRequired[datetime]
    delivered_at: NotRequired[datetime]


class OutboxMessage(TypedDict):
    """`outbox`: what the development SMS provider "sent" (it plays the patient's phone)."""

    _id: str
    to: str
    body: str
    sent_at: datetime
    provider_message_id: str


class OptOutDocument(TypedDict):
    """`sms_opt_outs`: one per phone number (E.164) that ever opted out, whether we texted it
    or not. `opted_out` False after START; `at` when it last changed, `source` how."""

    _id: str  # the number, E.164
    opted_out: bool
    at: datetime
    source: str  # "inbound_sms" (a STOP/START reply) or "provider" (e.g. Twilio's 21610)
    keyword: str


class AuditOutcome(StrEnum):
    """How an audited attempt ended: done, failed (a wrong password or date of birth, an SMS
    the provider refused) or refused (not allowed in the report's state)."""

    SUCCESS = "success"
    FAILURE = "failure"
    REFUSED = "refused"


class AuditRecord(TypedDict):
    """`audit`, append-only and hash-chained: who saw or changed what, when, from where.

    Entries written before the chain existed have none of the NotRequired fields (their
    outcome counts as success); see `services.infra.audit_chain`.
    """

    at: datetime  # UTC, whole milliseconds (what MongoDB keeps)
    actor: str  # "patient", "system", "admin:<username>" or "cli:<os user>"
    action: str
    report_id: str | None
    detail: dict[str, Any]
    seq: NotRequired[int]  # 1, 2, 3, ... without gaps: the place in the chain
    role: NotRequired[str]  # a staff role, "patient", "system", "operator" or "staff"
    object: NotRequired[str | None]  # what it was done to: a report, batch or user
    outcome: NotRequired[str]  # an AuditOutcome value
    client: NotRequired[str]  # the client's address ("" when there was no request)
    prev_hash: NotRequired[str]  # the hash of entry seq-1 ("" for the first)
    hash: NotRequired[str]  # SHA-256 of this entry's canonical form, prev_hash included


def reports(db: Database) -> AsyncCollection[ReportDocument]:
    return cast("AsyncCollection[ReportDocument]", db.reports)


def batches(db: Database) -> AsyncCollection[BatchDocument]:
    return cast("AsyncCollection[BatchDocument]", db.batches)


def notifications(db: Database) -> AsyncCollection[NotificationDocument]:
    return cast("AsyncCollection[NotificationDocument]", db.notifications)


def outbox(db: Database) -> AsyncCollection[OutboxMessage]:
    return cast("AsyncCollection[OutboxMessage]", db.outbox)


def sms_opt_outs(db: Database) -> AsyncCollection[OptOutDocument]:
    return cast("AsyncCollection[OptOutDocument]", db.sms_opt_outs)


def audit(db: Database) -> AsyncCollection[AuditRecord]:
    return cast("AsyncCollection[AuditRecord]", db.audit)
