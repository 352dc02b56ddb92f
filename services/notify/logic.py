"""Pure rules of the notify stage: who may be sent an SMS, the send-once claim, access links,
the SMS text, receipts. Twilio's own protocol is in `services.infra.twilio`.

No broker or database here; everything is a function of its arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, auto
from typing import Any

from contracts.v1 import ReportStatus
from services.infra import twilio
from services.infra.documents import AccessDocument, HoldDocument, ReportDocument
from services.infra.documents import NotificationStatus as N
from services.infra.release_rules import ReleaseAction, ReleaseRules, decide
from services.infra.tokens import new_token, token_hash

PURPOSE_RESULT_READY = "result_ready"

# Report statuses from which the SMS may be sent.
SENDABLE = frozenset({ReportStatus.CONVERTED, ReportStatus.RELEASED})

# Still owned by a live attempt, renewing its heartbeat (see `NotificationStatus`).
OWNED = frozenset({N.CLAIMED, N.SENDING})
# The SMS left the provider for the phone network: never send this one again.
SENT_STATUSES = frozenset({N.SENT, N.DELIVERED, N.UNDELIVERED})
# Receipts saying the SMS was sent but never reached the phone.
NOT_DELIVERED = frozenset({N.UNDELIVERED, N.FAILED})

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


# --- the release gate ------------------------------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """A converted report that may not be sent yet: where it goes instead, and why."""

    status: ReportStatus
    reason: str
    fields: dict[str, Any]


def release_gate(report: ReportDocument, rules: ReleaseRules, now: datetime) -> Wait | None:
    """None when a converted report may be sent now; else where it waits. A report staff
    released (`release`) has been looked at by a person and passes."""
    if report.get("release"):
        return None
    rejected = report.get("rejected_rows") or []
    if rejected:
        rows = ", ".join(str(entry["row"]) for entry in rejected)
        noun = "row" if len(rejected) == 1 else "rows"
        reason = f"incomplete: sheet {noun} {rows} of this patient could not be used"
        return Wait(ReportStatus.NEEDS_ATTENTION, reason, {})
    decision = decide(report["results"], rules)
    if decision.action is ReleaseAction.SEND:
        return None
    until = now + timedelta(hours=decision.hours) if decision.action is ReleaseAction.HOLD else None
    hold: HoldDocument = {
        "action": decision.action.value,
        "until": until,
        "reason": decision.reason,
        "rule": decision.rule,
        "at": now,
    }
    return Wait(ReportStatus.HELD, decision.reason, {"hold": hold})


# --- the send-once claim ---------------------------------------------------------------------


def notification_key(report: Mapping[str, Any], request_id: str | None = None) -> dict[str, Any]:
    """What makes a notification unique: one result-ready SMS per report version, and one
    more per staff request to text the patient again."""
    return {
        "report_id": report["_id"],
        "version": report.get("version", 1),
        "purpose": f"request:{request_id}" if request_id else PURPOSE_RESULT_READY,
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
    if state == N.UNKNOWN:
        return ExistingClaim.UNKNOWN
    if state == N.FAILED:
        return (
            ExistingClaim.REFUSED if record.get("refused") else ExistingClaim.FAILED_AFTER_SENDING
        )
    last_seen = record.get("heartbeat_at") or record.get("created_at")
    if last_seen is not None and now - last_seen < stale_after:
        return ExistingClaim.IN_PROGRESS
    return ExistingClaim.STALE if state == N.CLAIMED else ExistingClaim.ABANDONED


# --- access link -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessLink:
    token: str  # goes into the SMS only, never stored
    url: str
    access: AccessDocument  # what the report stores: the token's hash, never the token


def access_link(
    public_base_url: str, now: datetime, ttl_hours: int, token: str | None = None
) -> AccessLink:
    token = token or new_token()
    access: AccessDocument = {
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


def sms_body(lab_name: str, link: str, *, updated: bool = False, until: str = "") -> str:
    """The result SMS: who sends it, that a report is ready (or was updated, when an earlier
    version was texted), the link, the second check and, where it fits, until when the link
    works (`until`, e.g. "26 Dec 2026").

    No result values and no patient name: an SMS can be read by whoever holds the phone.
    The longest wording that still fits one SMS segment is used.
    """
    lab = " ".join(lab_name.split()) or "Your laboratory"
    news = "was updated" if updated else "is ready"
    valid = f" Link works until {until}." if until else ""
    dated = (
        (f"{lab}: your report {news}, open by {until}: {link} (confirm your date of birth)",)
        if until
        else ()
    )
    candidates = (
        f"{lab}: your laboratory report {news}. Open {link} and confirm your date of birth "
        f"to view it.{valid}",
        f"{lab}: your report {news}. Open {link} and confirm your date of birth.{valid}",
        f"{lab}: your report {news}: {link} (confirm your date of birth){valid}",
        *dated,
        f"{lab}: your report {news}. Open {link} and confirm your date of birth to view it.",
        f"{lab}: your report {news}. Open {link} and confirm your date of birth.",
        f"{lab}: your report {news}: {link} (confirm your date of birth)",
        f"{lab}: your report {news}: {link}",
    )
    return next((text for text in candidates if fits_one_segment(text)), candidates[-1])


def reminder_body(lab_name: str, link: str, until: str) -> str:
    """The one reminder: the report is still unread and its link ends soon. Like the first
    SMS, no patient data; the longest wording that fits one segment."""
    lab = " ".join(lab_name.split()) or "Your laboratory"
    candidates = (
        f"{lab}: reminder, your laboratory report is waiting. Open {link} by {until} and "
        "confirm your date of birth.",
        f"{lab}: your report is waiting. Open {link} by {until} (confirm your date of birth)",
        f"{lab}: your report is waiting until {until}: {link}",
        f"{lab}: your report is waiting: {link}",
    )
    return next((text for text in candidates if fits_one_segment(text)), candidates[-1])


def sms_date(value: datetime) -> str:
    """A link's end in an SMS: short, and not 03/04-ambiguous ("26 Dec 2026")."""
    return f"{value.day} {value:%b %Y}"


def is_e164(phone: str) -> bool:
    return bool(_E164.match(phone))


_PHONE_LIKE = re.compile(r"\+?\d[\d ()-]{5,}\d")


def redact_phone_numbers(text: str) -> str:
    """Provider error texts can quote the number ("The 'To' number +44... is not valid");
    they end up in logs, so numbers are blanked out."""
    return _PHONE_LIKE.sub("<number>", text)


# --- delivery receipts -----------------------------------------------------------------------

# How far a notification has got; a receipt never moves it back ("sent" after "delivered").
_RANK = {
    N.CLAIMED: 0,
    N.SENDING: 0,
    N.UNKNOWN: 0,
    N.SENT: 1,
    N.DELIVERED: 2,
    N.UNDELIVERED: 2,
    N.FAILED: 2,
}

# Provider receipt status (`SmsReceipt.status`) -> notification status.
_RECEIPT_STATUS = {
    "queued": N.SENT,
    "sent": N.SENT,
    "delivered": N.DELIVERED,
    "undelivered": N.UNDELIVERED,
    "failed": N.FAILED,
}


def notification_status_for(receipt_status: str) -> N:
    return _RECEIPT_STATUS[receipt_status]


def statuses_before(status: N) -> list[N]:
    """Notification statuses a receipt meaning `status` may still move forward from."""
    return [s for s, rank in _RANK.items() if rank < _RANK[status]]


def receipt_error(receipt_status: str, error_code: str) -> str:
    """What a not-delivered receipt leaves in the notification's `error`."""
    return f"{receipt_status} {error_code}".strip()


def undelivered_reason(receipt_status: str, error_code: str) -> str:
    code = error_code or receipt_status
    meaning = twilio.error_meaning(error_code)
    return f"SMS not delivered: {code}" + (f" ({meaning})" if meaning else "")
