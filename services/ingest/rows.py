"""One row of a results sheet: the columns the default layout knows (`COLUMNS`, with the
header names accepted for each) and how one row reads into a patient, a sample date and a
result. Pure.

Reading is the hot path of a 10,000-row upload, so each distinct patient and result is
validated against the contract once (`_patient`, `_lab_result`), and `logic.group_rows` reads
a patient's later rows with `parse_result` alone."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from datetime import date

from pydantic import ValidationError

from contracts.v1 import Flag, LabResult, Patient
from services.infra.sheet_profiles import FIELD_LABELS
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
    "pin": ("pin", "receipt pin", "pin code"),
    "language": ("language", "patient language", "preferred language", "lang"),
}
REQUIRED = ("patient_id", "name", "date_of_birth", "phone", "sample_date", "test", "value")
# The columns of a row's result; every other column is about the patient and sample.
RESULT_FIELDS = ("test", "value", "unit", "reference_range", "flag")
_REQUIRED_RESULT = tuple(f for f in REQUIRED if f in RESULT_FIELDS)
LABELS = FIELD_LABELS


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
    flag = _row_flag(cells, flags)
    date_of_birth = parse_date(cells.get("date_of_birth"), "Date of birth", day_first)
    sample_date = parse_date(cells.get("sample_date"), "Sample date", day_first)
    check_dates(date_of_birth, sample_date, today)
    try:
        patient = _patient(
            patient_id=text(cells["patient_id"]),
            name=text(cells["name"]),
            date_of_birth=date_of_birth,
            sex=sex,
            phone=normalise_phone(text(cells["phone"]), region),
            language=text(cells.get("language")),
        )
    except ValidationError as error:
        raise _column_error(error) from None
    return patient, sample_date, _result(cells, flag)


def parse_result(cells: Mapping[str, object], flags: Mapping[str, Flag] | None = None) -> LabResult:
    """A row's result alone, for a row whose patient cells (every column but RESULT_FIELDS)
    are those of a row `parse_row` read: its checks on the result columns, in its order."""
    for field_name in _REQUIRED_RESULT:
        if not text(cells.get(field_name)):
            raise RowError(f"{LABELS[field_name]} is empty")
    return _result(cells, _row_flag(cells, flags))


def _row_flag(cells: Mapping[str, object], flags: Mapping[str, Flag] | None) -> Flag:
    word = text(cells.get("flag")).lower()
    return flags[word] if flags and word in flags else parse_flag(cells.get("flag"))


def _result(cells: Mapping[str, object], flag: Flag) -> LabResult:
    try:
        return _lab_result(
            test=text(cells["test"]),
            value=text(cells["value"]),
            unit=text(cells.get("unit")),
            reference_range=text(cells.get("reference_range")),
            flag=flag,
        )
    except ValidationError as error:
        raise _column_error(error) from None


def _column_error(error: ValidationError) -> RowError:
    # The contract's limits (e.g. 200 characters); name the column, never echo the value.
    first = error.errors()[0]
    column = LABELS.get(str(first["loc"][0]), str(first["loc"][0]))
    return RowError(f"{column}: {first['msg']}")


# A sheet repeats a patient on each of their result rows, and results repeat across patients:
# each distinct one is validated once (the models are frozen, so sharing them is safe; a
# ValidationError is not cached).
_patient = functools.lru_cache(maxsize=4096)(Patient)
_lab_result = functools.lru_cache(maxsize=8192)(LabResult)
