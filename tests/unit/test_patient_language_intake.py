"""The patient's language as each intake gives it (the sheet's `Language` column, HL7 PID-15,
FHIR Patient.communication), and what the report stores: a language we send in, or the
lab's default with a note for staff when the one given is unknown."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from services.infra import fhir_bundle
from services.ingest import hl7, layout, logic, versions
from services.ingest.sheet_reader import RawSheet

DATA = Path(__file__).parents[1] / "data"
TODAY = date(2026, 3, 1)
HEADER = ["Patient ID", "Name", "Date of birth", "Phone", "Sample date", "Test", "Value"]


def _row(patient_id: str, language: str, test: str = "Glucose") -> list[object]:
    return [
        patient_id,
        "A Patient",
        "1980-01-15",
        "07911 123456",
        "2026-02-27",
        test,
        "5.1",
        language,
    ]


def _document(draft: logic.ReportDraft, default_language: str = "en") -> dict[str, Any]:
    return dict(
        logic.report_document(
            draft,
            report_id="r1",
            lab_id="demo-lab",
            correlation_id="c1",
            source={"kind": "sheet", "batch_id": "b1", "rows": [2]},
            now=datetime(2026, 3, 1, tzinfo=UTC),
            default_language=default_language,
        )
    )


def test_the_sheet_language_column_becomes_the_patient_s_language() -> None:
    header = [*HEADER, "Language"]
    rows = [_row("P1", "fr-CA"), _row("P1", "fr-CA", "Urea"), _row("P2", ""), _row("P3", "SW")]

    outcome = logic.group_rows(header, rows, "GB", TODAY)

    assert [d.patient.language for d in outcome.drafts] == ["fr-CA", "", "SW"]
    stored = [_document(d, default_language="es") for d in outcome.drafts]
    assert [s["patient"]["language"] for s in stored] == ["fr", "es", "sw"]
    assert all("language_note" not in s for s in stored)


def test_an_unknown_sheet_language_is_stored_as_the_lab_default_with_a_note() -> None:
    outcome = logic.group_rows([*HEADER, "Language"], [_row("P1", "xx")], "GB", TODAY)

    stored = _document(outcome.drafts[0], default_language="fr")

    assert stored["patient"]["language"] == "fr"
    assert stored["language_note"] == "Language 'xx' is not one we send in; sent in French."


def test_a_sheet_without_a_language_column_is_read_as_before() -> None:
    outcome = logic.group_rows(HEADER, [_row("P1", "")[:-1]], "GB", TODAY)

    assert outcome.drafts[0].patient.language == ""
    assert _document(outcome.drafts[0])["patient"]["language"] == "en"


def test_hl7_pid_15_is_the_patient_s_language() -> None:
    raw = (DATA / "hl7" / "oru_r01_v251.hl7").read_bytes()
    segments = raw.replace(b"\r\n", b"\r").split(b"\r")
    with_language = [s + b"||es^Spanish^ISO639" if s.startswith(b"PID|") else s for s in segments]

    (result,) = hl7.to_results(hl7.parse(b"\r".join(with_language)), "demo-lab", "GB")
    (without,) = hl7.to_results(hl7.parse(raw), "demo-lab", "GB")

    assert result.patient.language == "es"
    assert without.patient.language == ""


def test_fhir_patient_communication_gives_the_preferred_language() -> None:
    bundle = json.loads((DATA / "fhir" / "bundle_collection.json").read_text(encoding="utf-8"))
    patient = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    speaking = copy.deepcopy(bundle)
    speaking_patient = next(
        e["resource"] for e in speaking["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    speaking_patient["communication"] = [
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-GB"}]}},
        {"language": {"coding": [{"code": "sw"}], "text": "Swahili"}, "preferred": True},
    ]

    (result,) = fhir_bundle.to_results(speaking, "demo-lab", "GB")
    (without,) = fhir_bundle.to_results(bundle, "demo-lab", "GB")

    assert "communication" not in patient
    assert result.patient.language == "sw"
    assert without.patient.language == ""


def test_a_wide_sheet_s_language_column_is_the_patient_s_not_a_test() -> None:
    wide = RawSheet(
        "Results",
        [
            ["Patient ID", "Name", "Date of birth", "Phone", "Sample date", "Language", "Glucose"],
            ["P1", "A Patient", "1980-01-15", "07911 123456", "2026-02-27", "es", "5.1"],
        ],
    )

    table = layout.locate([wide], "wide.xlsx")
    outcome = logic.group_rows(table.header, table.rows, "GB", TODAY, row_numbers=table.row_numbers)

    (draft,) = outcome.drafts
    assert draft.patient.language == "es"
    assert [r.test for r in draft.results] == ["Glucose"]


def test_a_report_stored_before_languages_is_not_corrected_by_the_same_sheet_again() -> None:
    outcome = logic.group_rows([*HEADER, "Language"], [_row("P1", "")], "GB", TODAY)
    again = _document(outcome.drafts[0])
    before = copy.deepcopy(again)
    del before["patient"]["language"]
    french = copy.deepcopy(again)
    french["patient"]["language"] = "fr"

    assert versions.same_content(before, again)
    assert not versions.same_content(french, again)
    assert versions.changes(french, again) == [
        {"what": "patient language", "before": "fr", "after": "en"}
    ]
