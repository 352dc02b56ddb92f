"""Pure rules of the notify stage: who may be sent an SMS, the send-once claim, access links,
the SMS text, receipts, Twilio signatures.

No broker or database here; everything is a function of its arguments.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, auto
from typing import Any

from contracts.v1 import ReportStatus
from services.infra.tokens import new_token, token_hash

PURPOSE_RESULT_READY = "result_ready"

# Report statuses from which the SMS may be sent.
SENDABLE = frozenset({ReportStatus.CONVERTED, ReportStatus.RELEASED})

# Notification statuses. "claimed": an attempt owns the record but has not called the
# provider yet (if it dies, nothing was sent). "sending": it is (or was) talking to the
# provider (if it dies, the outcome is unknown).
CLAIMED = "claimed"
SENDING = "sending"
# Still owned by a live attempt, renewing its heartbeat.
OWNED = frozenset({CLAIMED, SENDING})
SENT = "sent"
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"
UNKNOWN = "unknown"

# The SMS left the provider for the phone network: never send this one again.
SENT_STATUSES = frozenset({SENT, DELIVERED, UNDELIVERED})
# Receipts saying the SMS was sent but never reached the phone.
NOT_DELIVERED = frozenset({UNDELIVERED, FAILED})

OUTCOME_UNKNOWN_REASON = (
    "SMS outcome unknown after an interrupted send; check the provider and resend"
)

# An attempt talking to the provider renews its claim this often; a claim not renewed for
# CLAIM_STALE_AFTER belongs to an attempt that died. A duplicate attempt looks again at a
# live claim every CLAIM_POLL_SECONDS.
HEARTBEAT_EVERY = timedelta(seconds=2)
CLAIM_STALE_AFTER = timedelta(seconds=15)
CLAIM_POLL_SECONDS = 0.5

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


# --- the send-once claim ---------------------------------------------------------------------


def notification_key(report: Mapping[str, Any]) -> dict[str, Any]:
    """What makes a notification unique: one result-ready SMS per report version."""
    return {
        "report_id": report["_id"],
        "version": report.get("version", 1),
        "purpose": PURPOSE_RESULT_READY,
    }


class ExistingClaim(Enum):
    """What a notification record found in place of a new claim means for this attempt."""

    SENT = auto()  # the SMS left the provider: only advance the report
    UNKNOWN = auto()  # an earlier send may or may not have gone: a person must check
    FAILED_AFTER_SENDING = auto()  # a receipt said it failed and has dealt with the report
    REFUSED = auto()  # the provider never took it: re-claim and send
    IN_PROGRESS = auto()  # another attempt owns it and is alive: wait for it
    STALE = auto()  # that attempt died before calling the provider: take the claim over
    ABANDONED = auto()  # that attempt died while talking to the provider: outcome unknown


def existing_claim(
    record: Mapping[str, Any], now: datetime, stale_after: timedelta = CLAIM_STALE_AFTER
) -> ExistingClaim:
    state = record["status"]
    if state in SENT_STATUSES:
        return ExistingClaim.SENT
    if state == UNKNOWN:
        return ExistingClaim.UNKNOWN
    if state == FAILED:
        return (
            ExistingClaim.REFUSED if record.get("refused") else ExistingClaim.FAILED_AFTER_SENDING
        )
    last_seen = record.get("heartbeat_at") or record.get("created_at")
    if last_seen is not None and now - last_seen < stale_after:
        return ExistingClaim.IN_PROGRESS
    return ExistingClaim.STALE if state == CLAIMED else ExistingClaim.ABANDONED


# --- access link -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessLink:
    token: str  # goes into the SMS only, never stored
    url: str
    access: dict[str, Any]  # what the report stores: the token's hash, never the token


def access_link(
    public_base_url: str, now: datetime, ttl_hours: int, token: str | None = None
) -> AccessLink:
    token = token or new_token()
    access = {
        "token_hash": token_hash(token),
        "expires_at": now + timedelta(hours=ttl_hours),
        "failed_attempts": 0,
        "locked": False,
    }
    return AccessLink(token, f"{public_base_url.rstrip('/')}/r/{token}", access)


# --- SMS text --------------------------------------------------------------------------------

# GSM 03.38 basic character set; the extension table's characters cost two septets.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_SINGLE_SEGMENT = 160
UCS2_SINGLE_SEGMENT = 70


def sms_units(text: str) -> tuple[str, int]:
    """(encoding, length in that encoding's units) of `text` as an SMS."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in text):
        return "gsm7", sum(2 if c in _GSM7_EXTENSION else 1 for c in text)
    return "ucs2", len(text.encode("utf-16-le")) // 2


def fits_one_segment(text: str) -> bool:
    encoding, units = sms_units(text)
    limit = GSM7_SINGLE_SEGMENT if encoding == "gsm7" else UCS2_SINGLE_SEGMENT
    return units <= limit


def sms_body(lab_name: str, link: str) -> str:
    """The result-ready SMS: who sends it, that a report is ready, the link, the second check.

    No result values and no patient name: an SMS can be read by whoever holds the phone.
    The longest wording that still fits one SMS segment is used.
    """
    lab = " ".join(lab_name.split()) or "Your laboratory"
    candidates = (
        f"{lab}: your laboratory report is ready. Open {link} and confirm your date of birth "
        "to view it.",
        f"{lab}: your report is ready. Open {link} and confirm your date of birth.",
        f"{lab}: your report is ready: {link} (confirm your date of birth)",
        f"{lab}: your report is ready: {link}",
    )
    return next((text for text in candidates if fits_one_segment(text)), candidates[-1])


def status_callback_url(public_base_url: str) -> str:
    """Where the provider posts delivery receipts (the gateway's Twilio webhook)."""
    return f"{public_base_url.rstrip('/')}/webhooks/twilio/status"


def is_e164(phone: str) -> bool:
    return bool(_E164.match(phone))


_PHONE_LIKE = re.compile(r"\+?\d[\d ()-]{5,}\d")


def redact_phone_numbers(text: str) -> str:
    """Provider error texts can quote the number ("The 'To' number +44... is not valid");
    they end up in logs, so numbers are blanked out."""
    return _PHONE_LIKE.sub("<number>", text)


# --- delivery receipts -----------------------------------------------------------------------

# How far a notification has got; a receipt never moves it back ("sent" after "delivered").
_RANK = {CLAIMED: 0, SENDING: 0, UNKNOWN: 0, SENT: 1, DELIVERED: 2, UNDELIVERED: 2, FAILED: 2}

# Provider receipt status -> notification status.
_RECEIPT_STATUS = {
    "queued": SENT,
    "sent": SENT,
    "delivered": DELIVERED,
    "undelivered": UNDELIVERED,
    "failed": FAILED,
}

# Twilio's most common delivery error codes, in words lab staff can act on.
_TWILIO_ERRORS = {
    "21610": "the recipient has opted out of messages",
    "21614": "not a mobile number",
    "30003": "phone unreachable or switched off",
    "30004": "message blocked by the recipient or carrier",
    "30005": "unknown or inactive number",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier as spam",
    "30008": "unknown carrier error",
}


def notification_status_for(receipt_status: str) -> str:
    return _RECEIPT_STATUS[receipt_status]


def statuses_before(status: str) -> list[str]:
    """Notification statuses a receipt meaning `status` may still move forward from."""
    return [s for s, rank in _RANK.items() if rank < _RANK[status]]


def receipt_error(receipt_status: str, error_code: str) -> str:
    """What a not-delivered receipt leaves in the notification's `error`."""
    return f"{receipt_status} {error_code}".strip()


def undelivered_reason(receipt_status: str, error_code: str) -> str:
    code = error_code or receipt_status
    meaning = _TWILIO_ERRORS.get(error_code)
    return f"SMS not delivered: {code}" + (f" ({meaning})" if meaning else "")


# --- Twilio request signatures ---------------------------------------------------------------


def twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]]
) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the full URL + each POST key and value, sorted."""
    pairs = params.items() if isinstance(params, Mapping) else params
    payload = url + "".join(key + value for key, value in sorted(pairs))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def twilio_signature_valid(
    auth_token: str,
    url: str,
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    signature: str | None,
) -> bool:
    if not signature or not auth_token:
        return False
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), signature.encode())
