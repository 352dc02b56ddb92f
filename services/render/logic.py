"""Pure rendering logic: the template context built from a report document and lab settings.

Everything a template shows is prepared here as display text (dates for humans, readable
flags, sex spelled out), so lab templates stay simple `{{ ... }}` tags and no template ever
needs to call code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from contracts.flags import FLAG_WORDS, is_abnormal
from contracts.v1 import Flag

# Fixed English month names: `strftime("%b")` would follow the process locale.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SEX_LABELS = {"F": "Female", "M": "Male", "U": "Not stated"}
DEFAULT_TEMPLATE = "default"


class ReportDataError(ValueError):
    """The report document lacks something every report needs; it can never render."""


@dataclass(frozen=True)
class Lab:
    name: str
    address: str
    phone: str


def human_date(value: date) -> str:
    """03 Mar 1980: unambiguous whatever the reader's day/month habit."""
    return f"{value.day:02d} {MONTHS[value.month - 1]} {value.year}"


def parse_date(value: Any, field: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ReportDataError(f"{field} is not a date (expected YYYY-MM-DD)") from None


def age_on(birth: date, day: date) -> str:
    """Age in whole years on `day` (months for infants), as printed beside the birth date."""
    years = day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
    if years >= 2:
        return f"{years} years"
    months = (day.year - birth.year) * 12 + day.month - birth.month - (day.day < birth.day)
    if months < 0:
        return ""  # birth after sample: bad data, better print nothing than a negative age
    return f"{months} month" if months == 1 else f"{months} months"


def flag_label(flag: str) -> str:
    """The flag in words (`contracts.flags`): every HL7 table 0078 code has some."""
    try:
        return FLAG_WORDS[Flag(flag)]
    except ValueError:
        raise ReportDataError(
            f"unknown result flag {flag!r} (expected an HL7 table 0078 code or empty)"
        ) from None


def comment_lines(comments: Any) -> list[str]:
    """Comments as paragraphs: a string split on line breaks, or a list; blanks dropped."""
    if not comments:
        return []
    lines = comments.splitlines() if isinstance(comments, str) else [str(c) for c in comments]
    return [line.strip() for line in lines if line.strip()]


def short_reference(report_id: str) -> str:
    """A reference short enough to read out on the phone, still unique within a lab's day."""
    return report_id[:12].upper()


def _text(container: Mapping[str, Any], key: str, where: str) -> str:
    value = container.get(key)
    if value is None or str(value).strip() == "":
        raise ReportDataError(f"{where}{key} is missing")
    return str(value).strip()


def build_context(report: Mapping[str, Any], lab: Lab, today: date) -> dict[str, Any]:
    """The docxtpl context for `report` (a `reports` document, see docs/data-model.md).

    Values are plain strings; the renderer escapes them for XML (so `< 5.0` stays `< 5.0`).
    """
    patient = report.get("patient")
    if not isinstance(patient, Mapping):
        raise ReportDataError("patient is missing")
    birth = parse_date(patient.get("date_of_birth"), "patient.date_of_birth")
    sample = parse_date(report.get("sample_date"), "sample_date")
    raw_results = report.get("results") or []
    if not raw_results:
        raise ReportDataError("report has no results")

    results = []
    for index, result in enumerate(raw_results, start=1):
        where = f"result {index}: "
        flag = str(result.get("flag") or "").strip().upper()
        results.append(
            {
                "test": _text(result, "test", where),
                "value": _text(result, "value", where),
                "unit": str(result.get("unit") or ""),
                "reference_range": str(result.get("reference_range") or ""),
                "flag": flag,
                "flag_label": flag_label(flag),
                "abnormal": is_abnormal(flag),
            }
        )

    return {
        "lab": {"name": lab.name, "address": lab.address, "phone": lab.phone},
        "reference": short_reference(str(report.get("_id", ""))),
        "patient": {
            "name": _text(patient, "name", "patient."),
            "patient_id": _text(patient, "patient_id", "patient."),
            "date_of_birth": human_date(birth),
            "age": age_on(birth, sample),
            "sex": SEX_LABELS.get(str(patient.get("sex") or "U"), SEX_LABELS["U"]),
        },
        "sample_date": human_date(sample),
        "report_date": human_date(today),
        "results": results,
        "comments": comment_lines(report.get("comments")),
    }


def template_name(report: Mapping[str, Any]) -> str:
    name = report.get("template") or DEFAULT_TEMPLATE
    return str(name)


def docx_filename(report_id: str) -> str:
    return f"{report_id}.docx"
