"""Twilio's protocol, as both sides of it need it: notify sends SMS and reads error codes, the
gateway checks the signature of Twilio's status callbacks and maps their status. Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

# Twilio's MessageStatus values mapped onto the contract's receipt statuses (`SmsReceipt`).
_RECEIPT_STATUS = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}

# Twilio's most common delivery error codes, in words lab staff can act on.
ERROR_MEANINGS = {
    "21610": "the recipient has opted out of messages",
    "21614": "not a mobile number",
    "30003": "phone unreachable or switched off",
    "30004": "message blocked by the recipient or carrier",
    "30005": "unknown or inactive number",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier as spam",
    "30008": "unknown carrier error",
}

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"


def receipt_status(message_status: str) -> str | None:
    """The `SmsReceipt` status of a Twilio MessageStatus; None for one nobody acts on."""
    return _RECEIPT_STATUS.get(message_status.strip().lower())


def error_meaning(error_code: str) -> str | None:
    return ERROR_MEANINGS.get(error_code)


def status_callback_url(public_base_url: str) -> str:
    """Where Twilio posts delivery receipts (the gateway's webhook)."""
    return public_base_url.rstrip("/") + STATUS_CALLBACK_PATH


def signature(
    auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]]
) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the full URL + each POST key and value, sorted."""
    pairs = params.items() if isinstance(params, Mapping) else params
    payload = url + "".join(key + value for key, value in sorted(pairs))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_valid(
    auth_token: str,
    url: str,
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    given: str | None,
) -> bool:
    if not given or not auth_token:
        return False
    expected = signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), given.encode())
