"""Random tokens and what is stored in their place, shared by every service.

Notify stores `token_hash` of the link token it texts to the patient and the gateway finds the
report by `token_hash` of the token in the link: both must use these very functions. Admin and
portal session cookies are handled the same way.
"""

from __future__ import annotations

import hashlib
import re
import secrets


def new_token() -> str:
    """256 random bits, URL-safe (43 characters, all in the GSM-7 alphabet)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored in place of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(token: str) -> bool:
    """Tokens are URL-safe base64; anything else cannot be one and is never looked up."""
    return bool(re.fullmatch(r"[A-Za-z0-9_-]{16,128}", token))
