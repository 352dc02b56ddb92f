"""Pure readings of single values as sheets and LIS messages write them: text, dates, phone
numbers, sex and flags. Each raises `RowError` naming the column when a value is unusable."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from contracts.v1 import Flag
from services.infra import phones

SEX = {"f": "F", "female": "F", "m": "M", "male": "M", "u": "U", "unknown": "U", "": "U"}
FLAGS = {
    "": Flag.NORMAL,
    "n": Flag.NORMAL,
    "normal": Flag.NORMAL,
    "h": Flag.HIGH,
    "hh": Flag.CRITICAL_HIGH,
    "high": Flag.HIGH,
    "l": Flag.LOW,
    "ll": Flag.CRITICAL_LOW,
    "low": Flag.LOW,
}
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y")


class RowError(ValueError):
    """One value of one row is unusable; the message names the column."""


def text(value: object) -> str:
    """A cell as text: whole floats lose their '.0' (Excel stores 12 as 12.0)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN: an empty cell read by pandas
            return ""
        if value.is_integer():
            return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value).strip()


def parse_date(value: object, label: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raw = text(value)
    if not raw:
        raise RowError(f"{label} is empty")
    raw = raw.split(" ")[0]  # "2024-03-01 00:00:00" from a text cell
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise RowError(f"{label} '{raw}' is not a date (use YYYY-MM-DD or DD/MM/YYYY)")


def normalise_phone(raw: str, region: str) -> str:
    """E.164 form of a mobile number (`services.infra.phones`), as a row error."""
    try:
        return phones.normalise_phone(raw, region)
    except phones.PhoneError as error:
        raise RowError(str(error)) from None


def check_dates(date_of_birth: date, sample_date: date, today: date) -> None:
    if not date(1900, 1, 1) <= date_of_birth <= today:
        raise RowError(f"Date of birth {date_of_birth.isoformat()} is not a plausible birth date")
    if sample_date > today + timedelta(days=1):
        raise RowError(f"Sample date {sample_date.isoformat()} is in the future")
    if sample_date < date_of_birth:
        raise RowError("Sample date is before the date of birth")
