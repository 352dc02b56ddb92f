"""Turn sheet rows or an LIS message into report drafts. Pure: no broker, no database.

The default sheet layout is one row per test result, with these columns (header names are
matched case-insensitively; the aliases in `COLUMNS` are accepted too):

    Patient ID | Name | Date of birth | Sex | Phone | Sample date | Test | Value | Unit |
    Reference range | Flag | Language

Rows are grouped into one report per patient and sample date. A row that cannot be used
is rejected with its sheet row number and the reason; the rest of the sheet still goes on.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from contracts.v1 import Flag, IngestLisResult, LabResult, Patient, ReportStatus
from services.infra import languages
from services.infra.documents import (
    DuplicateEntry,
    LisSource,
    PatientFields,
    ReportDocument,
    ResultFields,
    SheetSource,
)
from services.ingest.errors import SheetError as SheetError
from services.ingest.rows import (
    COLUMNS,
    RESULT_FIELDS,
    map_columns,
    parse_result,
    parse_row,
)
from services.ingest.rows import LABELS as LABELS
from services.ingest.rows import REQUIRED as REQUIRED
from services.ingest.rows import normalise_header as normalise_header
from services.ingest.values import (
    RowError,
    check_dates,
    normalise_phone,
    parse_date,
    read_pin,
    text,
)

FIRST_DATA_ROW = 2  # sheet row number of the first row under the header


@dataclass(frozen=True)
class RejectedRow:
    row: int
    reason: str
    # Whom the row was about, as far as it can be read: its report must not go out without it.
    patient_id: str = ""
    sample_date: date | None = None

    def belongs_to(self, draft: ReportDraft) -> bool:
        """Whether this row may have been one of `draft`'s results. A row naming no patient
        could have been anyone's."""
        if not self.patient_id:
            return True
        if self.patient_id != draft.patient.patient_id:
            return False
        return self.sample_date is None or self.sample_date == draft.sample_date


@dataclass
class ReportDraft:
    """Everything ingest knows about one report before it is stored."""

    source_key: str
    patient: Patient
    sample_date: date
    results: list[LabResult] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    comments: str = ""
    # Rows of this patient and sample that could not be used: the report is incomplete.
    rejected: list[RejectedRow] = field(default_factory=list)
    pin: str = ""  # the receipt's PIN: ingest stores only its keyed hash (`_store_draft`)


@dataclass
class SheetOutcome:
    rows_total: int
    drafts: list[ReportDraft]
    rejected: list[RejectedRow]

    @property
    def rows_accepted(self) -> int:
        return sum(len(d.rows) for d in self.drafts)


def duplicate_entry(
    draft: ReportDraft, existing: Mapping[str, Any], *, outdated: bool = False
) -> DuplicateEntry:
    """How the batch page lists rows whose patient and sample were reported before (or
    reported from a newer upload or message than this one)."""
    rows = draft.rows
    shown = str(rows[0]) if len(rows) == 1 else f"{rows[0]}–{rows[-1]}"
    source = existing.get("source") or {}
    where = f"batch {source['batch_id']}" if source.get("batch_id") else "an LIS message"
    what = f"{draft.patient.patient_id}, sample {draft.sample_date.isoformat()}"
    if outdated:
        return {
            "row": shown,
            "reason": f"{what}: a newer upload or message ({where}) made the current version; "
            "not used",
        }
    return {"row": shown, "reason": f"{what}: already reported from {where}; not used again"}


def sheet_source_key(patient_id: str, sample_date: date) -> str:
    return f"sheet:{patient_id}:{sample_date.isoformat()}"


def group_rows(
    header: Iterable[object],
    rows: Iterable[Iterable[object]],
    region: str,
    today: date,
    *,
    row_numbers: Sequence[int] | None = None,
    day_first: bool | None = None,
    columns: Mapping[str, tuple[str, ...]] = COLUMNS,
    flags: Mapping[str, Flag] | None = None,
) -> SheetOutcome:
    """Validate every row and group the good ones into one draft per patient and sample.
    `row_numbers` are the sheet rows of `rows` (default: right under a header on row 1); in
    the wide layout several results share a row. `day_first` is the profile's date order."""
    positions = map_columns(header, columns)
    fields, width = list(positions.items()), max(positions.values()) + 1
    # A patient's cells repeat on each of their result rows: read once, then only the result.
    patient_columns = [i for f, i in fields if f not in RESULT_FIELDS]
    patients: dict[tuple[object, ...], tuple[Patient, date, str, str]] = {}
    drafts: dict[str, ReportDraft] = {}
    tests: dict[str, dict[str, int]] = {}  # draft key -> its tests (lower case) -> their row
    rejected: list[RejectedRow] = []
    seen_rows: set[int] = set()
    for offset, values in enumerate(rows):
        row_number = row_numbers[offset] if row_numbers is not None else FIRST_DATA_ROW + offset
        row = list(values)
        if all(not text(v) for v in row):
            continue  # blank lines between blocks are common in hand-made sheets
        seen_rows.add(row_number)
        if len(row) < width:
            row.extend([None] * (width - len(row)))
        cells = {f: row[i] for f, i in fields}
        try:
            same = tuple([row[i] for i in patient_columns])
            same += tuple(map(type, same))  # TRUE and 1 are equal; their text is not
            if (known := patients.get(same)) is not None:
                patient, sample_date, pin, key = known
                result = parse_result(cells, flags)
            else:
                patient, sample_date, result = parse_row(cells, region, today, day_first, flags)
                pin = read_pin(cells.get("pin"))
                key = sheet_source_key(patient.patient_id, sample_date)
                patients[same] = (patient, sample_date, pin, key)
            draft = drafts.get(key)
            if draft is None:
                drafts[key] = ReportDraft(key, patient, sample_date, [result], [row_number])
                drafts[key].pin = pin
                tests[key] = {result.test.lower(): row_number}
                continue
            if (draft.patient is not patient and draft.patient != patient) or draft.pin != pin:
                raise RowError(
                    f"patient details differ from row {draft.rows[0]} "
                    "for the same Patient ID and Sample date"
                )
            lowered, seen_tests = result.test.lower(), tests[key]
            earlier_row = seen_tests.get(lowered)
            if earlier_row is not None:
                raise RowError(
                    f"test '{result.test}' already given in row {earlier_row} "
                    "for this patient and sample"
                )
            seen_tests[lowered] = row_number
            draft.results.append(result)
            if draft.rows[-1] != row_number:
                draft.rows.append(row_number)
        except RowError as error:
            if not rejected or (rejected[-1].row, rejected[-1].reason) != (row_number, str(error)):
                rejected.append(rejected_row(row_number, str(error), cells, day_first))
    for unusable in rejected:
        for draft in drafts.values():
            if unusable.belongs_to(draft):
                draft.rejected.append(unusable)
    return SheetOutcome(len(seen_rows), list(drafts.values()), rejected)


def rejected_row(
    row_number: int, reason: str, cells: Mapping[str, object], day_first: bool | None = None
) -> RejectedRow:
    """A rejected row with whatever it still says about whom it was for."""
    try:
        sample_date: date | None = parse_date(cells.get("sample_date"), "Sample date", day_first)
    except RowError:
        sample_date = None
    return RejectedRow(row_number, reason, text(cells.get("patient_id")), sample_date)


def unknown_lab(lab_id: str, configured: Collection[str]) -> str | None:
    """Why a message for `lab_id` is refused, or None when this deployment serves that lab.

    Whoever can publish to the broker names the lab: without this check an LIS credential
    could create reports under any lab's name."""
    if lab_id in configured:
        return None
    return (
        f"lab '{lab_id}' is not a lab this deployment serves "
        "(RESULTFLOW_LAB_ID, RESULTFLOW_LAB_IDS); nothing was stored"
    )


def lis_draft(message: IngestLisResult, region: str, today: date) -> ReportDraft:
    """A draft from an LIS message; raises RowError when the message cannot be used."""
    check_dates(message.patient.date_of_birth, message.sample_date, today)
    patient = message.patient.model_copy(
        update={"phone": normalise_phone(message.patient.phone, region)}
    )
    return ReportDraft(
        source_key=f"lis:{message.accession}",
        patient=patient,
        sample_date=message.sample_date,
        results=list(message.results),
        comments=message.comments,
        pin=message.receipt_pin or "",
    )


def report_document(
    draft: ReportDraft,
    *,
    report_id: str,
    lab_id: str,
    correlation_id: str,
    source: SheetSource | LisSource,
    now: datetime,
    default_language: str = languages.ENGLISH,
) -> ReportDocument:
    """The `reports` document for a new draft (see docs/data-model.md); an unknown language:
    `default_language`, and `language_note` says so."""
    language = languages.choose(draft.patient.language, default_language)
    document: ReportDocument = {
        "_id": report_id,
        "lab_id": lab_id,
        "batch_id": source["batch_id"] if source["kind"] == "sheet" else None,
        "source": source,
        "source_key": draft.source_key,
        "version": 1,
        "correlation_id": correlation_id,
        "patient": cast(PatientFields, draft.patient.model_dump(mode="json"))
        | {"language": language.language},
        "sample_date": draft.sample_date.isoformat(),
        "results": [cast(ResultFields, r.model_dump(mode="json")) for r in draft.results],
        "comments": draft.comments,
        "rejected_rows": [{"row": r.row, "reason": r.reason} for r in draft.rejected],
        "template": "default",
        "status": ReportStatus.RECEIVED,
        "history": [{"status": ReportStatus.RECEIVED, "at": now, "reason": ""}],
        "created_at": now,
        "updated_at": now,
    }
    if language.fell_back:
        document["language_note"] = language.note
    return document
