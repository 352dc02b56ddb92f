"""Choice rules pick a report's template by its tests (or panels) and the patient's
language; the first matching rule wins and no match leaves the default."""

from __future__ import annotations

from typing import Any

from services.infra.template_rules import TemplateRule, choose_template

RULES = [
    TemplateRule(test="HbA1c", language="fr", template="diabete"),
    TemplateRule(test="HbA1c", language="", template="diabetes"),
    TemplateRule(test="", language="fr", template="francais"),
]


def report(*tests: str, language: str = "", panel: str = "") -> dict[str, Any]:
    results = [{"test": t, "panel": panel} for t in tests]
    return {"results": results, "patient": {"name": "A", "language": language}}


def test_a_rule_for_a_test_matches_a_result_of_that_test_in_any_case() -> None:
    assert choose_template(RULES, report("Glucose", "hba1c")) == "diabetes"


def test_the_first_matching_rule_wins_so_test_and_language_beats_test_alone() -> None:
    assert choose_template(RULES, report("HbA1c", language="fr")) == "diabete"


def test_a_language_rule_matches_regional_variants_of_the_patient_s_language() -> None:
    assert choose_template(RULES, report("Glucose", language="fr-CA")) == "francais"
    assert choose_template(RULES, report("Glucose", language="fy")) is None


def test_a_panel_name_matches_like_a_test_name() -> None:
    assert choose_template(RULES, report("Glycated haemoglobin", panel="HbA1c")) == "diabetes"


def test_a_report_no_rule_matches_keeps_the_default() -> None:
    assert choose_template(RULES, report("Glucose")) is None
    assert choose_template([], report("HbA1c")) is None
