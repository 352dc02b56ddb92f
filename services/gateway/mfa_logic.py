"""Pure rules of the second factor: TOTP (RFC 6238) secrets, codes and their QR code, and
one-time recovery codes. No database or web imports."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

import pyotp
import segno

RECOVERY_CODES = 10
# 24 characters of 31 (no 0/o, 1/l/i): 118 random bits, written as six groups of four. At
# 112 bits or more a plain SHA-256 may keep them (ASVS 5.0 6.5.2): no list can guess them.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH = 24
_CODE = re.compile(r"\d{6}")
# A code is accepted one 30 s step early or late: phone clocks drift.
VALID_STEPS = (-1, 0, 1)


def new_secret() -> str:
    """A TOTP secret: 160 random bits, base32, as authenticator apps expect."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The enrolment QR code as inline SVG, made here (no outside service sees the secret)."""
    return str(segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff"))


def matching_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step `code` is valid for, if it is one of `now`'s and newer than `last_step`
    (a code is used once: replaying it, even within its 30 s, is refused)."""
    code = code.strip().replace(" ", "")
    if not _CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for offset in VALID_STEPS:  # compare every candidate: no early exit, constant time
        step = current + offset
        if hmac.compare_digest(totp.generate_otp(step), code) and (
            last_step is None or step > last_step
        ):
            found = step
    return found


def new_recovery_codes() -> list[str]:
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)))
    return codes


def recovery_code_hash(code: str) -> str:
    """Codes are stored only as this hash (118 random bits need no slow one); dashes,
    spaces and case are ignored."""
    normal = re.sub(r"[\s-]", "", code).lower()
    return hashlib.sha256(normal.encode()).hexdigest()


def looks_like_recovery_code(code: str) -> bool:
    return len(re.sub(r"[\s-]", "", code)) == _RECOVERY_LENGTH
