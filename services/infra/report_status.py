"""The report state machine: which status may follow which. Pure, no I/O.

    received -> rendered -> converted -> notified -> delivered
    converted -> needs_attention (incomplete) -> released (by staff, with a reason) -> notified
    converted -> held (a release rule) -> released (by staff, or when the hold's time is up)

Any live report can fail, be withdrawn by staff or be superseded by a newer version. A
failed report can be retried from the stage that failed: back to received (render again),
rendered (convert again) or converted (release rules and the SMS again).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from contracts.v1 import ReportStatus as S

_SIDE_EXITS = frozenset({S.FAILED, S.WITHDRAWN, S.SUPERSEDED})

NEXT: dict[S, frozenset[S]] = {
    S.RECEIVED: frozenset({S.RENDERED}) | _SIDE_EXITS,
    S.RENDERED: frozenset({S.CONVERTED}) | _SIDE_EXITS,
    S.CONVERTED: frozenset({S.NEEDS_ATTENTION, S.HELD, S.RELEASED, S.NOTIFIED}) | _SIDE_EXITS,
    # Staff release it as is (with a reason), or corrected rows replace it (a new version).
    S.NEEDS_ATTENTION: frozenset({S.RELEASED, S.WITHDRAWN, S.SUPERSEDED}),
    S.HELD: frozenset({S.RELEASED}) | _SIDE_EXITS,
    S.RELEASED: frozenset({S.NOTIFIED}) | _SIDE_EXITS,
    S.NOTIFIED: frozenset({S.DELIVERED}) | _SIDE_EXITS,
    S.DELIVERED: frozenset({S.WITHDRAWN, S.SUPERSEDED}),
    # A retry goes back to the stage that failed (nothing else ever moves backwards); a
    # resend after a failed SMS is notified again.
    S.FAILED: frozenset(
        {S.RECEIVED, S.RENDERED, S.CONVERTED, S.NOTIFIED, S.WITHDRAWN, S.SUPERSEDED}
    ),
    S.WITHDRAWN: frozenset(),
    S.SUPERSEDED: frozenset(),
}

# The order a healthy report walks; used to tell "already past this step" from "not yet".
PIPELINE: tuple[S, ...] = (S.RECEIVED, S.RENDERED, S.CONVERTED, S.RELEASED, S.NOTIFIED, S.DELIVERED)
# Stopped after conversion until someone (or the hold's time) releases it.
WAITING = frozenset({S.NEEDS_ATTENTION, S.HELD})
# Staff may have the patient texted again (a resend, a new link) from these.
TEXTABLE_AGAIN = frozenset({S.NOTIFIED, S.DELIVERED, S.FAILED})
# Nothing will ever happen to these again.
FINAL = frozenset({S.WITHDRAWN, S.SUPERSEDED})


def sources_of(target: S) -> frozenset[S]:
    """Every status from which `target` may be reached in one step."""
    return frozenset(status for status, nexts in NEXT.items() if target in nexts)


def is_past(status: S, step: S) -> bool:
    """True when a report in `status` has already done `step` (or can never do it)."""
    if status in (S.FAILED, *FINAL):
        return True
    if status in WAITING:
        return PIPELINE.index(step) <= PIPELINE.index(S.CONVERTED)
    return PIPELINE.index(status) >= PIPELINE.index(step)


def can_move(status: S, target: S) -> bool:
    return target in NEXT[status]


# A report moving through the pipeline leaves each of these stages in seconds (render about
# 0.1 s, convert about 1 s a document, measured); one still there after this long is stuck
# (its command lost, a service down) and is shown to staff, who can retry it.
STUCK_AFTER: dict[S, timedelta] = {
    S.RECEIVED: timedelta(minutes=15),
    S.RENDERED: timedelta(minutes=15),
    S.CONVERTED: timedelta(minutes=15),
    S.RELEASED: timedelta(minutes=15),
}


def stuck_query(now: datetime) -> dict[str, Any]:
    """The MongoDB filter of reports that have not moved for longer than their stage's limit."""
    return {
        "$or": [
            # A report whose SMS waits for quiet hours to end (`sms_due`) is not stuck.
            {"status": status.value, "updated_at": {"$lte": now - limit}, "sms_due": None}
            for status, limit in STUCK_AFTER.items()
        ]
    }


def is_stuck(status: str, updated_at: datetime, now: datetime) -> bool:
    """Whether a report in `status`, last moved at `updated_at`, is stuck at `now`."""
    limit = STUCK_AFTER.get(S(status))
    return limit is not None and updated_at <= now - limit
