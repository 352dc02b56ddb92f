"""Release rules: what waits, for how long, and for whom."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts.v1 import Flag
from services.infra.release_rules import (
    ReleaseAction,
    ReleaseDecision,
    ReleaseRule,
    ReleaseRules,
    decide,
)


def result(test: str = "Sodium", value: str = "140", flag: str = "") -> dict[str, Any]:
    return {"test": test, "value": value, "unit": "", "reference_range": "", "flag": flag}


def rules(*items: dict[str, Any]) -> ReleaseRules:
    return ReleaseRules.model_validate({"rules": list(items)})


def test_with_no_rules_a_normal_report_goes_out_at_once() -> None:
    assert decide([result(), result("Potassium", "5.9", "H")], rules()) == ReleaseDecision(
        ReleaseAction.SEND
    )


@pytest.mark.parametrize("flag", [Flag.CRITICAL_HIGH, Flag.CRITICAL_LOW])
def test_a_critical_value_waits_for_a_person_by_default(flag: Flag) -> None:
    decision = decide([result(), result("Potassium", "6.9", flag)], rules())
    assert decision.action is ReleaseAction.REVIEW
    assert decision.reason == f"Potassium 6.9 ({flag}): critical value, phone the patient first"
    assert decision.rule is None


def test_a_rule_can_hold_a_test_for_hours_whatever_its_case() -> None:
    decision = decide(
        [result("HIV 1/2 Ab", "Negative")],
        rules({"test": "hiv 1/2 ab", "action": "hold", "hours": 48, "note": "counselling"}),
    )
    assert decision == ReleaseDecision(
        ReleaseAction.HOLD, 48, "HIV 1/2 Ab Negative: counselling", 0
    )


def test_a_rule_matches_a_test_code_too() -> None:
    decision = decide(
        [{**result("Haemoglobin A1c", "48"), "code": "4548-4"}],
        rules({"test": "4548-4", "action": "review"}),
    )
    assert decision.action is ReleaseAction.REVIEW


def test_a_rule_for_some_flags_leaves_other_flags_alone() -> None:
    hold_high = rules({"test": "Potassium", "flags": ["H"], "action": "hold", "hours": 2})
    assert decide([result("Potassium", "5.9", "H")], hold_high).action is ReleaseAction.HOLD
    assert decide([result("Potassium", "4.1")], hold_high).action is ReleaseAction.SEND


def test_the_strictest_result_decides_the_report_and_the_longest_hold_wins() -> None:
    two_holds = rules(
        {"test": "Sodium", "action": "hold", "hours": 2},
        {"test": "Urea", "action": "hold", "hours": 6},
    )
    assert decide([result(), result("Urea", "9")], two_holds).hours == 6
    with_review = rules(*two_holds.model_dump()["rules"], {"test": "Urea", "action": "review"})
    decision = decide([result(), result("Urea", "9")], with_review)
    assert (decision.action, decision.rule) == (ReleaseAction.REVIEW, 2)


def test_a_rule_can_mark_a_value_critical() -> None:
    decision = decide(
        [result("Troponin", "80", "H")],
        rules({"test": "Troponin", "flags": ["H"], "action": "send", "critical": True}),
    )
    assert decision.action is ReleaseAction.REVIEW
    assert decision.reason == "Troponin 80 (H): critical value"


def test_a_rule_that_names_a_critical_flag_may_send_it() -> None:
    decision = decide(
        [result("Glucose", "1.9", "LL")],
        rules({"test": "Glucose", "flags": ["LL"], "action": "hold", "hours": 1}),
    )
    assert (decision.action, decision.hours) == (ReleaseAction.HOLD, 1)


def test_a_rule_for_any_flag_does_not_send_a_critical_value_unreviewed() -> None:
    decision = decide(
        [result("Glucose", "1.9", "LL")], rules({"test": "Glucose", "action": "send"})
    )
    assert decision.action is ReleaseAction.REVIEW


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"action": "hold"}, "a hold needs hours of at least 1"),
        ({"action": "send", "hours": 3}, "only a hold has hours"),
        ({"action": "later"}, "Input should be 'send', 'hold' or 'review'"),
        ({"action": "hold", "hours": 100_000}, "less than or equal to 720"),
        ({"action": "send", "flags": ["X"]}, "Input should be"),
        ({"action": "send", "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_a_rule_that_makes_no_sense_is_refused_with_the_reason(
    rule: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ReleaseRule.model_validate(rule)
