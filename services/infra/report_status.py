"""The report state machine: which status may follow which. Pure, no I/O."""

from __future__ import annotations

from contracts.v1 import ReportStatus as S

# Status only moves forward. `failed` is terminal here; a resend makes a new attempt later.
# Only a converted report (its PDF exists) can be held for review, then released.
NEXT: dict[S, frozenset[S]] = {
    S.RECEIVED: frozenset({S.RENDERED, S.FAILED, S.SUPERSEDED}),
    S.RENDERED: frozenset({S.CONVERTED, S.FAILED, S.SUPERSEDED}),
    S.CONVERTED: frozenset({S.RELEASED, S.NOTIFIED, S.HELD, S.FAILED, S.SUPERSEDED}),
    S.HELD: frozenset({S.RELEASED, S.FAILED, S.SUPERSEDED}),
    S.RELEASED: frozenset({S.NOTIFIED, S.FAILED, S.SUPERSEDED}),
    S.NOTIFIED: frozenset({S.DELIVERED, S.FAILED, S.SUPERSEDED}),
    S.DELIVERED: frozenset({S.SUPERSEDED}),
    S.FAILED: frozenset(),
    S.SUPERSEDED: frozenset(),
}

# The order a healthy report walks; used to tell "already past this step" from "not yet".
PIPELINE: tuple[S, ...] = (S.RECEIVED, S.RENDERED, S.CONVERTED, S.RELEASED, S.NOTIFIED, S.DELIVERED)


def sources_of(target: S) -> frozenset[S]:
    """Every status from which `target` may be reached in one step."""
    return frozenset(status for status, nexts in NEXT.items() if target in nexts)


def is_past(status: S, step: S) -> bool:
    """True when a report in `status` has already done `step` (or can never do it)."""
    if status in (S.FAILED, S.SUPERSEDED):
        return True
    if status is S.HELD:
        return PIPELINE.index(step) <= PIPELINE.index(S.CONVERTED)
    return PIPELINE.index(status) >= PIPELINE.index(step)
