"""Pure readings of single values as sheets and LIS messages write them: text, dates, phone
numbers, sex and flags. Each raises `RowError` naming the column when a value is unusable."""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, timedelta

from contracts.flags import ACCEPTED, normalise_flag
from contracts.v1 import Flag
from services.infra import phones, second_check

SEX = {"f": "F", "female": "F", "m": "M", "male": "M", "u": "U", "unknown": "U", "": "U"}


class RowError(ValueError):
    """One value of one row is unusable; the message names the column."""


def text(value: object) -> str:
    """A cell as text: whole floats lose their '.0' (Excel stores 12 as 12.0)."""
    if value.__class__ is str:  # most cells: the fast way out
        return value.strip()  # type: ignore[attr-defined]
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN: an empty numeric cell, as some readers give it
            return ""
        if value.is_integer():
            return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value).strip()


EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 is 1900-01-01 (Excel's phantom 29 Feb included)
MAX_SERIAL = 2_958_465  # 9999-12-31
MAX_AGE_YEARS = 130
# Month names of the shipped languages (English, French, German, Spanish, Portuguese,
# Italian, Dutch); their unambiguous 3- and 4-letter abbreviations are accepted too.
_MONTH_NAMES = (
    ("january", "janvier", "januar", "enero", "janeiro", "gennaio", "januari", "jänner"),
    ("february", "février", "fevrier", "februar", "febrero", "fevereiro", "febbraio", "februari"),
    ("march", "mars", "märz", "marz", "marzo", "março", "marco", "maart"),
    ("april", "avril", "abril", "aprile"),
    ("may", "mai", "mayo", "maio", "maggio", "mei"),
    ("june", "juin", "juni", "junio", "junho", "giugno"),
    ("july", "juillet", "juli", "julio", "julho", "luglio"),
    ("august", "août", "aout", "agosto", "augustus"),
    ("september", "septembre", "septiembre", "setembro", "settembre", "sept"),
    ("october", "octobre", "oktober", "octubre", "outubro", "ottobre"),
    ("november", "novembre", "noviembre", "novembro"),
    ("december", "décembre", "decembre", "dezember", "diciembre", "dezembro", "dicembre"),
)


def _month_table() -> dict[str, int]:
    table: dict[str, int] = {}
    short: dict[str, set[int]] = {}
    for number, names in enumerate(_MONTH_NAMES, start=1):
        for name in names:
            table[name] = number
            for length in (3, 4):
                short.setdefault(name[:length], set()).add(number)
    for prefix, numbers in short.items():
        if len(numbers) == 1 and prefix not in table:
            table[prefix] = numbers.pop()
    return table


MONTHS = _month_table()
_ISO = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T].*)?$")
_NUMERIC = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?: .*)?$")
_DAY_MONTH = re.compile(r"^(\d{1,2})\.?[\s\-./]*([^\W\d_]+)\.?[\s\-./,]+(\d{4})(?: .*)?$")
_MONTH_DAY = re.compile(r"^([^\W\d_]+)\.?\s+(\d{1,2}),?\s+(\d{4})$")


@functools.lru_cache(maxsize=8192, typed=True)  # a patient's dates repeat on each result row
def parse_date(value: object, label: str, day_first: bool | None = None) -> date:
    """A date cell: a real date, an Excel serial number, ISO, DD/MM/YYYY, DD.MM.YYYY,
    DD-Mon-YYYY or a month name. `day_first` is the profile's order for 03/04/2026; without
    one such a date is a row error naming the ambiguity rather than a guess."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == value and 1 <= value <= MAX_SERIAL:  # NaN != NaN
            return EXCEL_EPOCH + timedelta(days=int(value))
        raise RowError(f"{label} '{text(value)}' is not a date")
    raw = text(value)
    if not raw:
        raise RowError(f"{label} is empty")
    if raw.isdigit() and 5 <= len(raw) <= 6:  # a serial number stored as text
        return parse_date(int(raw), label, day_first)
    try:
        return _text_date(raw, label, day_first)
    except ValueError as error:
        if isinstance(error, RowError):
            raise
    raise RowError(f"{label} '{raw[:40]}' is not a date (use YYYY-MM-DD or DD/MM/YYYY)")


def _text_date(raw: str, label: str, day_first: bool | None) -> date:
    if match := _ISO.match(raw):
        return date(int(match[1]), int(match[2]), int(match[3]))
    if match := _NUMERIC.match(raw):
        first, second, year = int(match[1]), int(match[2]), int(match[3])
        if first > 12 or second > 12 or first == second:
            day, month = (first, second) if first > 12 or second <= 12 else (second, first)
            return date(year, month, day)
        if day_first is None:
            raise RowError(
                f"{label} '{raw[:40]}' is ambiguous: day {first} of month {second}, or month "
                f"{first} day {second}? Set the date order (day first or month first) in the "
                "lab's sheet profile, or write dates as YYYY-MM-DD"
            )
        return date(year, second, first) if day_first else date(year, first, second)
    if (match := _DAY_MONTH.match(raw)) and (named := MONTHS.get(match[2].lower())):
        return date(int(match[3]), named, int(match[1]))
    if (match := _MONTH_DAY.match(raw)) and (named := MONTHS.get(match[1].lower())):
        return date(int(match[3]), named, int(match[2]))
    raise ValueError(raw)


@functools.lru_cache(maxsize=4096)  # a patient's number repeats on each result row
def normalise_phone(raw: str, region: str) -> str:
    """E.164 form of a mobile number (`services.infra.phones`), as a row error."""
    try:
        return phones.normalise_phone(raw, region)
    except phones.PhoneError as error:
        raise RowError(str(error)) from None


def read_pin(value: object) -> str:
    """A receipt PIN cell: "" when empty, else 4-8 digits (the error never shows the value)."""
    raw = text(value)
    if not raw:
        return ""
    try:
        return second_check.normalise_pin(raw)
    except second_check.PinError as error:
        raise RowError(str(error)) from None


@functools.lru_cache(maxsize=4096)  # the same patient and sample on each result row
def check_dates(date_of_birth: date, sample_date: date, today: date) -> None:
    if date_of_birth > today:
        raise RowError(f"Date of birth {date_of_birth.isoformat()} is in the future")
    if date_of_birth < today.replace(year=today.year - MAX_AGE_YEARS, day=min(today.day, 28)):
        raise RowError(
            f"Date of birth {date_of_birth.isoformat()} is more than {MAX_AGE_YEARS} years ago"
        )
    if sample_date > today + timedelta(days=1):
        raise RowError(f"Sample date {sample_date.isoformat()} is in the future")
    if sample_date < date_of_birth:
        raise RowError("Sample date is before the date of birth")


@functools.lru_cache(maxsize=1024, typed=True)
def parse_flag(value: object) -> Flag:
    """A flag cell: any HL7 table 0078 code or a common spelling (`contracts.flags`)."""
    raw = text(value)
    flag = normalise_flag(raw)
    if flag is None:
        raise RowError(f"Flag '{raw[:40]}' is not a known flag (use {ACCEPTED})")
    return flag
