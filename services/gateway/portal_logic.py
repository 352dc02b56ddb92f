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
from services.infra import i18n
from services.infra.i18n import N_
from services.infra.languages import ENGLISH

PORTAL_SESSION_TTL = timedelta(minutes=15)


class LinkState(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    LOCKED = "locked"
    REPLACED = "replaced"  # a newer version of the report replaced this one
    WITHDRAWN = "withdrawn"  # the lab withdrew the report
    OPEN = "open"


# What a patient reads on a link that cannot be used: (HTTP status, title, message).
CLOSED_PAGES: dict[LinkState, tuple[int, str, str]] = {
    LinkState.UNKNOWN: (
        404,
        N_("This link is not valid"),
        N_(
            "Check that you opened the whole link from the text message. If it still "
            "does not work, call the lab: they can send you a new link."
        ),
    ),
    LinkState.EXPIRED: (
        410,
        N_("This link has expired"),
        N_(
            "For your privacy, result links work for a limited time. Call the lab and "
            "ask for a new link: they will send it to you by text message."
        ),
    ),
    LinkState.LOCKED: (
        403,
        N_("Too many attempts"),
        N_(
            "This link has been locked after too many wrong answers. Call the lab and "
            "ask for a new link: they will send it to you by text message."
        ),
    ),
    LinkState.REPLACED: (
        410,
        N_("A newer report replaced this one"),
        N_(
            "The lab updated your report. Use the link in the newest text message from "
            "the lab, or call the lab and ask for a new link."
        ),
    ),
    LinkState.WITHDRAWN: (
        410,
        N_("This report was withdrawn"),
        N_("The lab withdrew this report. Please call the lab."),
    ),
}


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


# A flag in words, never by colour alone: what the patient reads next to each value (in
# English here; the catalogs translate these and the rest of HL7 table 0078's words).
FLAG_WORDS = {
    Flag.HIGH: N_("High"),
    Flag.LOW: N_("Low"),
    Flag.CRITICAL_HIGH: N_("Very high: the lab may call you"),
    Flag.CRITICAL_LOW: N_("Very low: the lab may call you"),
    Flag.NORMAL: N_("Within range"),
}
UNKNOWN_FLAG = N_("See the report")


def flag_words(flag: str, language: str = ENGLISH) -> str:
    try:
        known = Flag(flag)
    except ValueError:
        return i18n.gettext(language, UNKNOWN_FLAG)
    words = FLAG_WORDS.get(known) or flags.FLAG_WORDS[known]  # the rest of HL7 table 0078
    return i18n.gettext(language, words)


def flag_class(flag: str) -> str:
    """The CSS class of a flag (the colour only repeats the words)."""
    return {"H": "high", "L": "low", "HH": "critical", "LL": "critical"}.get(flag, "normal")


def result_rows(results: list[Mapping[str, Any]], language: str = ENGLISH) -> list[dict[str, str]]:
    """A report's results as the portal's table shows them, flags in `language`."""
    return [
        {
            "test": str(r.get("test", "")),
            "value": str(r.get("value", "")),
            "unit": str(r.get("unit", "")),
            "reference_range": str(r.get("reference_range", "")),
            "flag": flag_words(str(r.get("flag", "")), language),
            "flag_class": flag_class(str(r.get("flag", ""))),
        }
        for r in results
    ]


def long_date(value: date | datetime | str | None, language: str = ENGLISH) -> str:
    """A date spelled out for a patient in their language ("26 December 2026", "26 décembre
    2026"): no 03/04 ambiguity."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return str(value)
    if value is None:
        return ""
    return i18n.long_date(value, language)


def link_expiry(report: Mapping[str, Any], language: str = ENGLISH) -> str:
    """Until when the report's link works, spelled out; "" when it has none."""
    access = report.get("access") or {}
    return long_date(access.get("expires_at"), language)
