"""The report state machine: status only moves forward, and the stages can tell "done" from
"not yet"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from contracts.v1 import ReportStatus as S
from services.infra.report_status import (
    NEXT,
    PIPELINE,
    STUCK_AFTER,
    is_past,
    is_stuck,
    sources_of,
)


def test_every_status_has_a_row_in_the_table() -> None:
    assert set(NEXT) == set(S)


def test_the_healthy_path_is_walkable_step_by_step() -> None:
    for here, there in pairwise(PIPELINE):
        assert there in NEXT[here], f"{here} -> {there}"


def test_status_never_moves_backwards_along_the_healthy_path() -> None:
    for later_index, later in enumerate(PIPELINE):
        for earlier in PIPELINE[: later_index + 1]:
            assert earlier not in NEXT[later], f"{later} -> {earlier}"


def test_withdrawn_and_superseded_are_final() -> None:
    assert NEXT[S.WITHDRAWN] == frozenset()
    assert NEXT[S.SUPERSEDED] == frozenset()


def test_only_a_failed_report_goes_back_and_only_to_a_stage_that_can_run_again() -> None:
    order = [*PIPELINE[:3]]
    for status, nexts in NEXT.items():
        backwards = {n for n in nexts if n in order and status in order}
        backwards = {n for n in backwards if order.index(n) <= order.index(status)}
        assert backwards == set(), status
    assert {S.RECEIVED, S.RENDERED, S.CONVERTED} <= NEXT[S.FAILED]


def test_every_report_not_yet_final_can_be_withdrawn_or_superseded() -> None:
    for status in set(S) - {S.WITHDRAWN, S.SUPERSEDED}:
        assert S.WITHDRAWN in NEXT[status], status
        assert S.SUPERSEDED in NEXT[status], status


def test_a_report_waiting_for_a_person_can_only_be_released_withdrawn_or_replaced() -> None:
    assert NEXT[S.NEEDS_ATTENTION] == frozenset({S.RELEASED, S.WITHDRAWN, S.SUPERSEDED})
    assert S.NOTIFIED not in NEXT[S.HELD]


def test_only_a_converted_report_can_be_held_and_only_after_a_gate_released() -> None:
    assert sources_of(S.HELD) == frozenset({S.CONVERTED})
    assert sources_of(S.NEEDS_ATTENTION) == frozenset({S.CONVERTED})
    assert sources_of(S.RELEASED) == frozenset({S.CONVERTED, S.HELD, S.NEEDS_ATTENTION})


def test_sources_of_is_the_table_read_backwards() -> None:
    for target in S:
        assert sources_of(target) == {s for s, nexts in NEXT.items() if target in nexts}
    assert sources_of(S.RECEIVED) == frozenset({S.FAILED})  # created, or a retried render


@pytest.mark.parametrize(
    ("status", "step", "past"),
    [
        (S.RECEIVED, S.RENDERED, False),
        (S.RENDERED, S.RENDERED, True),
        (S.CONVERTED, S.RENDERED, True),
        (S.CONVERTED, S.NOTIFIED, False),
        (S.NOTIFIED, S.CONVERTED, True),
        (S.DELIVERED, S.NOTIFIED, True),
        # A held report has its PDF but has not been released or sent.
        (S.HELD, S.CONVERTED, True),
        (S.HELD, S.RELEASED, False),
        (S.HELD, S.NOTIFIED, False),
        (S.NEEDS_ATTENTION, S.CONVERTED, True),
        (S.NEEDS_ATTENTION, S.NOTIFIED, False),
        # A failed or superseded report will never do any step: no stage should act on it.
        (S.FAILED, S.RENDERED, True),
        (S.SUPERSEDED, S.NOTIFIED, True),
        (S.WITHDRAWN, S.NOTIFIED, True),
    ],
)
def test_a_stage_can_tell_whether_a_report_is_past_its_step(status: S, step: S, past: bool) -> None:
    assert is_past(status, step) is past


def test_a_report_is_stuck_only_in_a_moving_stage_and_only_past_its_limit() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    limit = STUCK_AFTER[S.RENDERED]
    assert is_stuck("rendered", now - limit, now)
    assert not is_stuck("rendered", now - limit + timedelta(seconds=1), now)
    # Waiting for a person, or done: never stuck, however long.
    for status in ("held", "needs_attention", "notified", "delivered", "failed"):
        assert not is_stuck(status, now - timedelta(days=30), now)
