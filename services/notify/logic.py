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
from services.infra import africastalking, twilio
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
    meaning = twilio.error_meaning(error_code) or africastalking.failure_meaning(error_code)
    return f"SMS not delivered: {code}" + (f" ({meaning})" if meaning else "")
