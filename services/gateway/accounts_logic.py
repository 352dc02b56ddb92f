"""Pure rules of staff accounts: passwords, usernames, login lockout, where to go after login.

No database or web imports here: everything is a function of its arguments.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 happily hashes more, but nobody types this much
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")

LOGIN_MAX_FAILURES = 10
LOGIN_LOCK = timedelta(minutes=15)
ADMIN_SESSION_TTL = timedelta(hours=12)


def password_problem(password: str) -> str | None:
    """Why `password` is not acceptable, or None when it is."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Password must be at least {MIN_PASSWORD_LENGTH} characters long."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Password must be at most {MAX_PASSWORD_LENGTH} characters long."
    if password.strip() == "":
        return "Password must not be only spaces."
    return None


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


def lock_after_failure(failures: int, now: datetime) -> datetime | None:
    """After the `failures`-th consecutive failure: until when the username is locked."""
    if failures >= LOGIN_MAX_FAILURES:
        return now + LOGIN_LOCK
    return None
