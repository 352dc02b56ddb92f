"""Pure rules of the patient portal: whether a link may be used, the date-of-birth check,
how results read to a patient (flags in words, dates spelled out).

No database or web imports here: everything is a function of its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from contracts import flags
from contracts.v1 import Flag, ReportStatus

PORTAL_SESSION_TTL = timedelta(minutes=15)


class LinkState(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    LOCKED = "locked"
    REPLACED = "replaced"  # a newer version of the report replaced this one
    WITHDRAWN = "withdrawn"  # the lab withdrew the report
    OPEN = "open"


def link_state(report: Mapping[str, Any] | None, now: datetime, max_attempts: int) -> LinkState:
    """Whether a report's access link may be used for a date-of-birth check."""
    if report is None or not report.get("access"):
        return LinkState.UNKNOWN
    access = report["access"]
    if report.get("status") == ReportStatus.SUPERSEDED:
        return LinkState.REPLACED
    if report.get("status") == ReportStatus.WITHDRAWN:
        return LinkState.WITHDRAWN
    if access.get("expires_at") is None:
        return LinkState.EXPIRED
    if access["expires_at"] < now:
        return LinkState.EXPIRED
    if access.get("locked") or int(access.get("failed_attempts", 0)) >= max_attempts:
        return LinkState.LOCKED
    return LinkState.OPEN


def parse_date_of_birth(form: Mapping[str, str]) -> date | None:
    """The date entered in the portal form: `date_of_birth` (YYYY-MM-DD) or day/month/year."""
    iso = (form.get("date_of_birth") or "").strip()
    if iso:
        try:
            return date.fromisoformat(iso)
        except ValueError:
            return None
    try:
        day = int((form.get("day") or "").strip())
        month = int((form.get("month") or "").strip())
        year = int((form.get("year") or "").strip())
    except ValueError:
        return None
    if year < 100:  # a two-digit year is ambiguous for a birth date
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def date_of_birth_matches(entered: date, stored: str | date | None) -> bool:
    if stored is None:
        return False
    if isinstance(stored, datetime):
        stored = stored.date()
    if isinstance(stored, date):
        return entered == stored
    try:
        return entered == date.fromisoformat(str(stored)[:10])
    except ValueError:
        return False


def remaining_attempts(failed_attempts: int, max_attempts: int) -> int:
    return max(0, max_attempts - failed_attempts)


# A flag in words, never by colour alone: what the patient reads next to each value.
FLAG_WORDS = {
    Flag.HIGH: "High",
    Flag.LOW: "Low",
    Flag.CRITICAL_HIGH: "Very high: the lab may call you",
    Flag.CRITICAL_LOW: "Very low: the lab may call you",
    Flag.NORMAL: "Within range",
}


def flag_words(flag: str) -> str:
    try:
        known = Flag(flag)
    except ValueError:
        return "See the report"
    return FLAG_WORDS.get(known) or flags.FLAG_WORDS[known]  # the rest of HL7 table 0078


def flag_class(flag: str) -> str:
    """The CSS class of a flag (the colour only repeats the words)."""
    return {"H": "high", "L": "low", "HH": "critical", "LL": "critical"}.get(flag, "normal")


def result_rows(results: list[Mapping[str, Any]]) -> list[dict[str, str]]:
    """A report's results as the portal's table shows them."""
    return [
        {
            "test": str(r.get("test", "")),
            "value": str(r.get("value", "")),
            "unit": str(r.get("unit", "")),
            "reference_range": str(r.get("reference_range", "")),
            "flag": flag_words(str(r.get("flag", ""))),
            "flag_class": flag_class(str(r.get("flag", ""))),
        }
        for r in results
    ]


def long_date(value: date | datetime | str | None) -> str:
    """A date spelled out for a patient ("26 December 2026"): no 03/04 ambiguity."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return str(value)
    if value is None:
        return ""
    return f"{value.day} {value:%B %Y}"


def link_expiry(report: Mapping[str, Any]) -> str:
    """Until when the report's link works, spelled out; "" when it has none."""
    access = report.get("access") or {}
    return long_date(access.get("expires_at"))
