"""Turn sheet rows or an LIS message into report drafts. Pure: no broker, no database.

The default sheet layout is one row per test result, with these columns (header names are
matched case-insensitively; the aliases in `COLUMNS` are accepted too):

    Patient ID | Name | Date of birth | Sex | Phone | Sample date | Test | Value | Unit |
    Reference range | Flag

Rows are grouped into one report per patient and sample date. A row that cannot be used
is rejected with its sheet row number and the reason; the rest of the sheet still goes on.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from pydantic import ValidationError

from contracts.v1 import Flag, IngestLisResult, LabResult, Patient, ReportStatus
from services.infra.documents import (
    DuplicateEntry,
    LisSource,
    PatientFields,
    ReportDocument,
    ResultFields,
    SheetSource,
)
from services.ingest.errors import SheetError
from services.ingest.values import (
    SEX,
    RowError,
    check_dates,
    normalise_phone,
    parse_date,
    parse_flag,
    text,
)

# field -> header names accepted for it (normalised: lower case, single spaces)
COLUMNS: dict[str, tuple[str, ...]] = {
    "patient_id": ("patient id", "patient_id", "mrn", "patient number"),
    "name": ("name", "patient name", "full name"),
    "date_of_birth": ("date of birth", "dob", "birth date", "birthdate"),
    "sex": ("sex", "gender"),
    "phone": ("phone", "mobile", "phone number", "mobile number"),
    "sample_date": ("sample date", "collection date", "collected"),
    "test": ("test", "test name", "analyte"),
    "value": ("value", "result"),
    "unit": ("unit", "units"),
    "reference_range": ("reference range", "ref range", "reference", "normal range"),
    "flag": ("flag", "abnormal flag"),
}
REQUIRED = ("patient_id", "name", "date_of_birth", "phone", "sample_date", "test", "value")
LABELS = {
    "patient_id": "Patient ID",
    "name": "Name",
    "date_of_birth": "Date of birth",
    "sex": "Sex",
    "phone": "Phone",
    "sample_date": "Sample date",
    "test": "Test",
    "value": "Value",
    "unit": "Unit",
    "reference_range": "Reference range",
    "flag": "Flag",
}
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


@dataclass
class SheetOutcome:
    rows_total: int
    drafts: list[ReportDraft]
    rejected: list[RejectedRow]

    @property
    def rows_accepted(self) -> int:
        return sum(len(d.rows) for d in self.drafts)


def normalise_header(header: object) -> str:
    return re.sub(r"[\s_]+", " ", str(header or "")).strip().lower()


def map_columns(
    headers: Iterable[object], columns: Mapping[str, tuple[str, ...]] = COLUMNS
) -> dict[str, int]:
    """field -> column index; raises SheetError naming every required column not found."""
    positions: dict[str, int] = {}
    for index, header in enumerate(headers):
        name = normalise_header(header)
        for field_name, aliases in columns.items():
            if name in aliases and field_name not in positions:
                positions[field_name] = index
    missing = [LABELS[f] for f in REQUIRED if f not in positions]
    if missing:
        raise SheetError(
            "the sheet has no column for "
            + ", ".join(missing)
            + "; expected a header row with: "
            + ", ".join(LABELS.values())
        )
    return positions


def parse_row(
    cells: Mapping[str, object],
    region: str,
    today: date,
    day_first: bool | None = None,
    flags: Mapping[str, Flag] | None = None,
) -> tuple[Patient, date, LabResult]:
    """One row's patient, sample date and result; `flags` is the profile's flag words."""
    for field_name in REQUIRED:
        if not text(cells.get(field_name)):
            raise RowError(f"{LABELS[field_name]} is empty")
    sex = SEX.get(text(cells.get("sex")).lower())
    if sex is None:
        raise RowError(f"Sex '{text(cells.get('sex'))}' is not one of F, M, U")
    word = text(cells.get("flag")).lower()
    flag = flags[word] if flags and word in flags else parse_flag(cells.get("flag"))
    date_of_birth = parse_date(cells.get("date_of_birth"), "Date of birth", day_first)
    sample_date = parse_date(cells.get("sample_date"), "Sample date", day_first)
    check_dates(date_of_birth, sample_date, today)
    try:
        patient = Patient(
            patient_id=text(cells["patient_id"]),
            name=text(cells["name"]),
            date_of_birth=date_of_birth,
            sex=sex,  # type: ignore[arg-type]
            phone=normalise_phone(text(cells["phone"]), region),
        )
        result = LabResult(
            test=text(cells["test"]),
            value=text(cells["value"]),
            unit=text(cells.get("unit")),
            reference_range=text(cells.get("reference_range")),
            flag=flag,
        )
    except ValidationError as error:
        # The contract's limits (e.g. 200 characters); name the column, never echo the value.
        first = error.errors()[0]
        column = LABELS.get(str(first["loc"][0]), str(first["loc"][0]))
        raise RowError(f"{column}: {first['msg']}") from None
    return patient, sample_date, result


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
    drafts: dict[str, ReportDraft] = {}
    rejected: list[RejectedRow] = []
    seen_rows: set[int] = set()
    for offset, values in enumerate(rows):
        row_number = row_numbers[offset] if row_numbers is not None else FIRST_DATA_ROW + offset
        row = list(values)
        if all(not text(v) for v in row):
            continue  # blank lines between blocks are common in hand-made sheets
        seen_rows.add(row_number)
        cells = {f: row[i] if i < len(row) else None for f, i in positions.items()}
        try:
            patient, sample_date, result = parse_row(cells, region, today, day_first, flags)
            key = sheet_source_key(patient.patient_id, sample_date)
            draft = drafts.get(key)
            if draft is None:
                drafts[key] = ReportDraft(key, patient, sample_date, [result], [row_number])
                continue
            if draft.patient != patient:
                raise RowError(
                    f"patient details differ from row {draft.rows[0]} "
                    "for the same Patient ID and Sample date"
                )
            for earlier_row, earlier in zip(draft.rows, draft.results, strict=True):
                if earlier.test.lower() == result.test.lower():
                    raise RowError(
                        f"test '{result.test}' already given in row {earlier_row} "
                        "for this patient and sample"
                    )
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
    )


def report_document(
    draft: ReportDraft,
    *,
    report_id: str,
    lab_id: str,
    correlation_id: str,
    source: SheetSource | LisSource,
    now: datetime,
) -> ReportDocument:
    """The `reports` document for a new draft (see docs/data-model.md)."""
    return {
        "_id": report_id,
        "lab_id": lab_id,
        "batch_id": source["batch_id"] if source["kind"] == "sheet" else None,
        "source": source,
        "source_key": draft.source_key,
        "version": 1,
        "correlation_id": correlation_id,
        "patient": cast(PatientFields, draft.patient.model_dump(mode="json")),
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
