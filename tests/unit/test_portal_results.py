"""How the portal shows results to a patient: flags in words, dates spelled out."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.gateway import portal_logic as rules


def test_every_flag_is_said_in_words_not_only_by_colour() -> None:
    rows = rules.result_rows(
        [
            {
                "test": "K",
                "value": "6.9",
                "unit": "mmol/L",
                "reference_range": "3.5-5.1",
                "flag": "HH",
            },
            {
                "test": "Na",
                "value": "150",
                "unit": "mmol/L",
                "reference_range": "135-145",
                "flag": "H",
            },
            {"test": "Hb", "value": "9", "unit": "g/dL", "reference_range": "12-16", "flag": "L"},
            {
                "test": "Glu",
                "value": "5",
                "unit": "mmol/L",
                "reference_range": "3.9-5.6",
                "flag": "",
            },
        ]
    )
    assert [r["flag"] for r in rows] == [
        "Very high: the lab may call you",
        "High",
        "Low",
        "Within range",
    ]
    assert [r["flag_class"] for r in rows] == ["critical", "high", "low", "normal"]


def test_an_unknown_flag_sends_the_patient_to_the_report_rather_than_guessing() -> None:
    assert rules.flag_words("ZZ") == "See the report"


def test_every_hl7_flag_reads_in_words() -> None:
    assert rules.flag_words("A") == "Abnormal"
    assert rules.flag_words("POS") == "Positive"


def test_dates_are_spelled_out_so_day_and_month_cannot_be_confused() -> None:
    assert rules.long_date("2026-03-02") == "2 March 2026"
    assert rules.long_date(date(2026, 12, 26)) == "26 December 2026"
    assert rules.long_date(datetime(2026, 4, 3, 23, 0, tzinfo=UTC)) == "3 April 2026"
    assert rules.long_date(None) == ""
    assert rules.long_date("not a date") == "not a date"
