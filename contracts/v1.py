"""Version 1 of every ResultFlow message.

Additive changes stay here (consumers ignore unknown fields); a breaking change is a new
module `v2` running beside this one. Every message carries the report or batch it concerns,
a `correlation_id` that follows one upload or one LIS message through every stage, and
the time it was made.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

VERSION = "v1"

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class ReportStatus(StrEnum):
    """Where a report is (the state machine: `services.infra.report_status`).

    received -> rendered -> converted -> (needs attention | held -> released) -> notified ->
    delivered; failed, withdrawn (by staff: never sent, link revoked) and superseded (a newer
    version replaced it) on the side.
    """

    RECEIVED = "received"
    RENDERED = "rendered"
    CONVERTED = "converted"
    NEEDS_ATTENTION = "needs_attention"
    HELD = "held"
    RELEASED = "released"
    NOTIFIED = "notified"
    DELIVERED = "delivered"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"
    SUPERSEDED = "superseded"


class Flag(StrEnum):
    """Abnormality flag of one result: HL7 v2 table 0078 (its "N" is stored as empty:
    within range). Critical HH/LL ("phone the patient first") stay apart from H/L. Words
    for each and the spellings sheets use (Positive, Reactive...): `contracts.flags`."""

    HIGH = "H"
    LOW = "L"
    CRITICAL_HIGH = "HH"
    CRITICAL_LOW = "LL"
    NORMAL = ""
    BELOW_SCALE = "<"
    ABOVE_SCALE = ">"
    ABNORMAL = "A"
    VERY_ABNORMAL = "AA"
    SIGNIFICANTLY_HIGH = "HU"
    SIGNIFICANTLY_LOW = "LU"
    CHANGE_UP = "U"
    CHANGE_DOWN = "D"
    BETTER = "B"
    WORSE = "W"
    SUSCEPTIBLE = "S"
    RESISTANT = "R"
    INTERMEDIATE = "I"
    MODERATELY_SUSCEPTIBLE = "MS"
    VERY_SUSCEPTIBLE = "VS"
    SUSCEPTIBLE_DOSE_DEPENDENT = "SDD"
    NON_SUSCEPTIBLE = "NS"
    SYNERGY_RESISTANT = "SYN-R"
    SYNERGY_SUSCEPTIBLE = "SYN-S"
    POSITIVE = "POS"
    NEGATIVE = "NEG"
    INDETERMINATE = "IND"
    DETECTED = "DET"
    NOT_DETECTED = "ND"
    REACTIVE = "RR"
    WEAKLY_REACTIVE = "WR"
    NON_REACTIVE = "NR"
    ANTI_COMPLEMENTARY = "AC"
    CYTOTOXIC = "TOX"
    QC_FAILURE = "QCF"
    OUTSIDE_THRESHOLD = "EX"
    EXPECTED = "EXP"
    UNEXPECTED = "UNE"
    NO_BREAKPOINT = "NCL"


class Message(BaseModel):
    """Fields every message carries. `routing_key` is the AMQP routing key and `type`."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    routing_key: ClassVar[str]

    correlation_id: Identifier = Field(description="Follows one upload or LIS message end to end.")
    created_at: datetime = Field(default_factory=utcnow, description="When the message was made.")


class LabResult(BaseModel):
    """One test result as printed on the report."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    test: NonEmpty
    value: NonEmpty = Field(description="As measured, e.g. '5.4' or '< 0.5' or 'Negative'.")
    unit: str = ""
    reference_range: str = ""
    flag: Flag = Flag.NORMAL


class Patient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    patient_id: NonEmpty
    name: NonEmpty
    date_of_birth: date
    sex: Literal["F", "M", "U"] = "U"
    phone: NonEmpty = Field(
        description="Mobile number; E.164 preferred, national numbers use the lab's region."
    )
    language: str = Field(
        "",
        max_length=35,
        description="The patient's language, ISO 639-1 (`fr`; `fr-CA` reads as `fr`): the SMS, "
        "portal and report template language. Empty, or one not shipped: the lab's default.",
    )


# --- commands -------------------------------------------------------------------------------


class IngestBatch(Message):
    """Gateway -> ingest: an uploaded results sheet, stored in GridFS, is to be read."""

    routing_key: ClassVar[str] = "ingest.batch.v1"

    batch_id: Identifier
    lab_id: Identifier
    file_id: Identifier = Field(description="GridFS id of the uploaded sheet.")
    profile: str | None = Field(
        None, max_length=60, description="The lab's sheet profile to read it with; none: the usual."
    )
    preview: bool = Field(
        False,
        description="Only read and check it: record on the batch what it would make, make nothing.",
    )
    template: str | None = Field(
        None,
        max_length=40,
        description="The report template chosen at upload for the whole batch; none: the "
        "lab's choice rules pick one per report.",
    )


class IngestLisResult(Message):
    """LIS -> ingest: all results of one sample of one patient, to be reported.

    `message_id` is the LIS's own id of this message; a redelivered or re-sent message with
    the same `lab_id` and `accession` creates nothing new.
    """

    routing_key: ClassVar[str] = "ingest.lis-result.v1"

    message_id: Identifier
    lab_id: Identifier
    accession: Identifier = Field(description="The LIS's sample / order number.")
    patient: Patient
    sample_date: date
    results: list[LabResult] = Field(min_length=1)
    comments: str = ""
    receipt_pin: str | None = Field(
        None,
        pattern=r"^[0-9]{4,8}$",
        repr=False,
        description="The PIN printed on the patient's collection receipt (4-8 digits), for "
        "labs whose portal asks for it; ingest keeps only a keyed hash of it.",
    )


class IngestFhirBundle(Message):
    """LIS or gateway (`POST /fhir/r4/Bundle`) -> ingest: a FHIR R4 Bundle (collection,
    transaction or message) of Patient, DiagnosticReport and Observation resources; each
    DiagnosticReport becomes one report, as an `IngestLisResult` would.

    `message_id` is the sender's id of this bundle (`Bundle.id` or its identifier).
    """

    routing_key: ClassVar[str] = "ingest.fhir-bundle.v1"

    message_id: Identifier
    lab_id: Identifier
    bundle: dict[str, Any] = Field(description="The Bundle resource, as FHIR JSON.")


class RenderReport(Message):
    """Ingest -> render: fill the lab's Word template for this report."""

    routing_key: ClassVar[str] = "render.report.v1"
    report_id: Identifier


class ConvertReport(Message):
    """Render -> convert: turn the report's .docx into its PDF."""

    routing_key: ClassVar[str] = "convert.report.v1"
    report_id: Identifier


class NotifyPatient(Message):
    """Convert (or a release) -> notify: pass the release gate, create the patient's access
    link and send the SMS. With `request_id` (gateway): staff asked to text the patient again
    (a resend or a new link); one SMS per request id, however often it arrives."""

    routing_key: ClassVar[str] = "notify.patient.v1"
    report_id: Identifier
    request_id: Identifier | None = None


class SendAccessCode(Message):
    """Gateway -> notify: a patient opened a link whose check is a texted code and asked for
    one; text a new 6-digit code to the report's number. One SMS per `request_id`, however
    often it arrives."""

    routing_key: ClassVar[str] = "notify.access-code.v1"
    report_id: Identifier
    request_id: Identifier


class SmsReceipt(Message):
    """Gateway (provider webhook) -> notify: the provider's delivery receipt for one SMS."""

    routing_key: ClassVar[str] = "notify.sms-receipt.v1"

    provider: Identifier
    provider_message_id: Identifier
    status: Literal["queued", "sent", "delivered", "undelivered", "failed"]
    error_code: str = ""


# --- events ---------------------------------------------------------------------------------


class ReportStatusChanged(Message):
    """Any service -> gateway: a report moved to a new status."""

    routing_key: ClassVar[str] = "report.status-changed.v1"

    report_id: Identifier
    batch_id: str | None = None
    lab_id: Identifier
    status: ReportStatus
    previous_status: ReportStatus | None = None
    reason: str = ""


COMMANDS: tuple[type[Message], ...] = (
    IngestBatch,
    IngestLisResult,
    IngestFhirBundle,
    RenderReport,
    ConvertReport,
    NotifyPatient,
    SendAccessCode,
    SmsReceipt,
)
EVENTS: tuple[type[Message], ...] = (ReportStatusChanged,)
MESSAGES: tuple[type[Message], ...] = COMMANDS + EVENTS
