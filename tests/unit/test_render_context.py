"""The template context: what a patient reads on the report, prepared for display."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.render import logic

LAB = logic.Lab("Example Lab", "1 Example Street", "+44 20 7946 0000")
TODAY = date(2025, 5, 14)


def report(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "_id": "3f2a9c1e5b7d4e0fa1b2c3d4e5f60718",
        "patient": {
            "patient_id": "P-1",
            "name": "Jane Doe",
            "date_of_birth": "1980-03-03",
            "sex": "F",
            "phone": "+447700900123",
        },
        "sample_date": "2025-05-12",
        "results": [
            {"test": "CRP", "value": "< 5.0", "unit": "mg/L", "reference_range": "< 5.0"},
            {
                "test": "Hb",
                "value": "11.2",
                "unit": "g/dL",
                "reference_range": "12-15",
                "flag": "L",
            },
            {"test": "Glucose", "value": "7.9", "unit": "mmol/L", "flag": "H"},
        ],
        "comments": "Fasting sample.\n\n  Repeat in 3 months.  ",
        "template": "default",
    }
    document.update(changes)
    return document


def test_dates_are_printed_day_month_name_year() -> None:
    context = logic.build_context(report(), LAB, TODAY)
    assert context["patient"]["date_of_birth"] == "03 Mar 1980"
    assert context["sample_date"] == "12 May 2025"
    assert context["report_date"] == "14 May 2025"


def test_age_at_sample_date_is_shown_in_years_or_months_for_infants() -> None:
    assert logic.build_context(report(), LAB, TODAY)["patient"]["age"] == "45 years"
    assert logic.age_on(date(2025, 1, 20), date(2025, 5, 12)) == "3 months"
    assert logic.age_on(date(2025, 4, 20), date(2025, 5, 12)) == "0 months"
    assert logic.age_on(date(2025, 6, 1), date(2025, 5, 12)) == ""


def test_flags_become_readable_marks_and_flagged_results_are_abnormal() -> None:
    results = logic.build_context(report(), LAB, TODAY)["results"]
    assert [(r["flag_label"], r["abnormal"]) for r in results] == [
        ("", False),
        ("Low", True),
        ("High", True),
    ]


def test_less_than_values_are_kept_verbatim() -> None:
    first = logic.build_context(report(), LAB, TODAY)["results"][0]
    assert first["value"] == "< 5.0"
    assert first["reference_range"] == "< 5.0"


def test_missing_unit_and_range_print_as_blank() -> None:
    glucose = logic.build_context(report(), LAB, TODAY)["results"][2]
    assert glucose["unit"] == "mmol/L"
    assert glucose["reference_range"] == ""


def test_comments_become_paragraphs_without_blank_lines() -> None:
    context = logic.build_context(report(), LAB, TODAY)
    assert context["comments"] == ["Fasting sample.", "Repeat in 3 months."]
    assert logic.build_context(report(comments=""), LAB, TODAY)["comments"] == []


def test_lab_header_and_patient_details_come_through() -> None:
    context = logic.build_context(report(), LAB, TODAY)
    assert context["lab"] == {
        "name": "Example Lab",
        "address": "1 Example Street",
        "phone": "+44 20 7946 0000",
    }
    assert context["patient"]["name"] == "Jane Doe"
    assert context["patient"]["sex"] == "Female"
    assert context["reference"] == "3F2A9C1E5B7D"


def test_unknown_flag_is_a_data_error() -> None:
    bad = report(results=[{"test": "Hb", "value": "1", "flag": "X"}])
    with pytest.raises(logic.ReportDataError, match="flag"):
        logic.build_context(bad, LAB, TODAY)


def test_report_without_results_or_with_a_bad_date_cannot_be_printed() -> None:
    with pytest.raises(logic.ReportDataError, match="no results"):
        logic.build_context(report(results=[]), LAB, TODAY)
    with pytest.raises(logic.ReportDataError, match="sample_date"):
        logic.build_context(report(sample_date="12/05/2025"), LAB, TODAY)


def test_template_name_defaults_to_the_shipped_template() -> None:
    assert logic.template_name({}) == "default"
    assert logic.template_name({"template": "lab-a"}) == "lab-a"
