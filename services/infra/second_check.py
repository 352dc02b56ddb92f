"""The portal's second check, chosen per lab (pure; shared by ingest, notify and gateway).

A lab asks its patients for their date of birth (the default), for the PIN printed on their
collection receipt, or for a one-time code texted when they open the link. The check a report
asks is decided when its link is made (`decide`) and stored on the link (`access.check`), so
the SMS wording and the portal agree even if the lab's setting changes later.

Secrets kept in place of a PIN or a texted code are keyed hashes (HMAC-SHA256 under the
server's `RESULTFLOW_SECOND_CHECK_SECRET`). A plain hash would not do: a 4-8 digit PIN or a
6-digit code has at most 10^8 values, so whoever read a stored SHA-256 (a backup, a copy of
the database) would find the digits in well under a second by hashing every candidate. Keyed,
the stored value is worthless without the secret, which lives only in the services'
environment. HMAC (not a salted slow hash such as argon2id) because ingest must derive the
same value for the same PIN again: a re-sent LIS message must not look like a correction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class SecondCheck(StrEnum):
    DATE_OF_BIRTH = "date_of_birth"
    PIN = "pin"
    SMS_CODE = "sms_code"


# Used when no secret is configured (a single-machine demo). Every real deployment sets
# RESULTFLOW_SECOND_CHECK_SECRET (docs/deployment-security.md): with this known key, stored
# PIN and code hashes are as weak as plain ones.
DEVELOPMENT_SECRET = "resultflow-development-second-check-secret"  # noqa: S105

PIN_DIGITS = (4, 8)
CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=10)
CODE_SEND_WINDOW = timedelta(hours=1)

NO_PIN_NOTE = "no receipt PIN on this report: the portal asks for the date of birth instead"

_PIN_SEPARATORS = re.compile(r"[\s.-]+")


class PinError(ValueError):
    """A PIN that is not 4 to 8 digits (the message never repeats the value)."""


def normalise_pin(raw: object) -> str:
    """A receipt PIN as stored and compared: its digits, spaces and dashes dropped. A sheet
    may hold it as a number (a spreadsheet turns "0042" into 42.0 unless the column is text:
    such a PIN is refused rather than guessed)."""
    text = _PIN_SEPARATORS.sub("", str(raw or ""))
    low, high = PIN_DIGITS
    if not (text.isascii() and text.isdigit() and low <= len(text) <= high):
        raise PinError(f"PIN must be {low} to {high} digits")
    return text


def keyed_hash(secret: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of `value` under the server secret, separated by `purpose` ("pin",
    "code"), hex. See the module's docstring for why it must be keyed."""
    key = (secret or DEVELOPMENT_SECRET).encode()
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def hash_matches(secret: str, purpose: str, entered: str, stored: str | None) -> bool:
    """Whether `entered` is the value whose keyed hash is `stored` (constant time)."""
    if not stored:
        return False
    return hmac.compare_digest(keyed_hash(secret, purpose, entered), stored)


def new_code() -> str:
    """A one-time code: 6 digits from the operating system's CSPRNG."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def parse_code(raw: str | None) -> str | None:
    """The code as typed (spaces allowed: "123 456"); None when it cannot be one."""
    text = re.sub(r"\s+", "", raw or "")
    return text if len(text) == CODE_DIGITS and text.isascii() and text.isdigit() else None


def parse_by_lab(text: str) -> dict[str, SecondCheck]:
    """`RESULTFLOW_SECOND_CHECK_BY_LAB`: "lab-b=pin, lab-c=sms_code" -> {lab: check}."""
    chosen: dict[str, SecondCheck] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        lab, sep, check = part.partition("=")
        if not sep or not lab.strip():
            raise ValueError(f"'{part.strip()}' is not lab=check")
        try:
            chosen[lab.strip()] = SecondCheck(check.strip())
        except ValueError:
            allowed = ", ".join(c.value for c in SecondCheck)
            raise ValueError(f"'{check.strip()}' is not a second check ({allowed})") from None
    return chosen


def configured(default: str, by_lab: Mapping[str, SecondCheck], lab_id: str) -> SecondCheck:
    """The check the lab asks for now: its own entry, else the deployment's default."""
    return by_lab.get(lab_id) or SecondCheck(default)


@dataclass(frozen=True)
class Decision:
    check: SecondCheck
    note: str = ""  # why the lab's usual check is not the one asked (shown to staff)


def decide(lab_check: SecondCheck, has_pin: bool) -> Decision:
    """The check a new link asks. A PIN lab's report that came without a PIN asks for the
    date of birth, and says so (rather than failing: the patient still gets the results,
    behind the check every lab had before PINs)."""
    if lab_check is SecondCheck.PIN and not has_pin:
        return Decision(SecondCheck.DATE_OF_BIRTH, NO_PIN_NOTE)
    return Decision(lab_check)


def check_of(access: Mapping[str, object] | None) -> SecondCheck:
    """The check a report's link asks (links made before the choice existed: date of birth)."""
    value = (access or {}).get("check")
    try:
        return SecondCheck(str(value)) if value else SecondCheck.DATE_OF_BIRTH
    except ValueError:
        return SecondCheck.DATE_OF_BIRTH
