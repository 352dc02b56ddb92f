"""Pure rules of staff accounts: passwords, usernames, login lockout, where to go after login.

No database or web imports here: everything is a function of its arguments.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 happily hashes more, but nobody types this much
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")

# How long a half-done login (password given; new password, MFA code or enrolment to come)
# is kept: long enough to fetch a phone, short enough not to be a session.
PENDING_LOGIN_TTL = timedelta(minutes=10)
PENDING_LOGIN_MAX_CODES = 5  # wrong MFA codes before the half-done login is dropped
SESSION_TOUCH_EVERY = timedelta(minutes=1)  # last_seen is written at most this often


@cache
def common_passwords() -> frozenset[str]:
    """The bundled breached/common password list (data/README.md), lower-cased. Only entries
    long enough to pass the length rule are kept: shorter ones are refused anyway, and the
    whole list would cost 40 MB of memory instead of 1."""
    data = resources.files("services.gateway").joinpath("data/common-passwords.txt.gz")
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8", errors="replace") as text:
        return frozenset(
            word for line in text if len(word := line.rstrip("\n").lower()) >= MIN_PASSWORD_LENGTH
        )


def password_problem(password: str, username: str = "") -> str | None:
    """Why `password` is not acceptable, or None when it is."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Password must be at least {MIN_PASSWORD_LENGTH} characters long."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Password must be at most {MAX_PASSWORD_LENGTH} characters long."
    if password.strip() == "":
        return "Password must not be only spaces."
    if username and username.lower() in password.lower():
        return "Password must not contain the username."
    if password.lower() in common_passwords():
        return "This password is in a list of passwords seen in breaches; choose another."
    return None


@dataclass(frozen=True)
class Limit:
    """At most `failures` failed logins per `window` for one key of `scope`; the attempt that
    reaches it blocks the key for `block`."""

    scope: str
    failures: int
    window: timedelta
    block: timedelta


# Per address first: one address guessing is stopped (per user, then at all) before anyone's
# account is. The per-user limit across addresses catches spraying from many addresses and
# spares the addresses the user has signed in from, so it cannot lock the user out.
USER_AT_ADDRESS = Limit("user_at_address", 10, timedelta(minutes=15), timedelta(minutes=15))
ADDRESS = Limit("address", 30, timedelta(minutes=15), timedelta(minutes=15))
USER = Limit("user", 50, timedelta(hours=1), timedelta(minutes=15))
EVERYONE = Limit("everyone", 1000, timedelta(minutes=1), timedelta(minutes=1))
KNOWN_ADDRESSES_KEPT = 10


def login_limits(username: str, address: str, known_address: bool) -> list[tuple[Limit, str]]:
    """The (limit, key) pairs a login attempt counts against."""
    limits = [(USER_AT_ADDRESS, f"{username}@{address}"), (ADDRESS, address)]
    if not known_address:
        limits.append((USER, username))
    limits.append((EVERYONE, "*"))
    return limits


class LoginStage(StrEnum):
    """Where a login is. Only a DONE session is signed in; the others may only finish."""

    CHANGE_PASSWORD = "change_password"  # noqa: S105 - a stage, set when an admin resets it
    MFA_CODE = "mfa_code"
    MFA_SETUP = "mfa_setup"  # MFA required for the role and not set up yet
    RECOVERY_CODES = "recovery_codes"  # shown once after setup, then on
    DONE = "done"


def next_stage(
    current: LoginStage | None,
    *,
    must_change_password: bool,
    mfa_enrolled: bool,
    mfa_required: bool,
) -> LoginStage:
    """The stage after `current` (None: the password was just checked). The second factor
    comes before a password change, so that a stolen password alone changes nothing."""
    order = [LoginStage.MFA_CODE, LoginStage.CHANGE_PASSWORD, LoginStage.MFA_SETUP]
    needed = {
        LoginStage.MFA_CODE: mfa_enrolled,
        LoginStage.CHANGE_PASSWORD: must_change_password,
        LoginStage.MFA_SETUP: mfa_required and not mfa_enrolled,
    }
    if current is LoginStage.MFA_SETUP:
        return LoginStage.RECOVERY_CODES
    start = 0 if current is None else order.index(current) + 1 if current in order else len(order)
    for stage in order[start:]:
        if needed[stage]:
            return stage
    return LoginStage.DONE


def username_problem(username: str) -> str | None:
    if not USERNAME_PATTERN.fullmatch(username):
        return "Username must be 1-64 characters: letters, digits, '.', '_', '@' or '-'."
    return None


# A path of this site: one slash, then printable ASCII with no backslash. Browsers drop tabs
# and newlines from a URL ("/\t/evil.example" is "//evil.example") and read "\" as "/".
_LOCAL_PATH = re.compile(r"/(?![/\\])[\x21-\x7e]*")


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path of this site, never another one."""
    if not target or not _LOCAL_PATH.fullmatch(target) or "\\" in target:
        return "/"
    return target


def retry_after_seconds(blocked_until: datetime, now: datetime) -> int:
    """For a Retry-After header: whole seconds, at least 1."""
    return max(1, int((blocked_until - now).total_seconds() + 0.999))
