"""Corrections: the same content is nothing new, different content is the next version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.ingest import versions
from services.ingest.versions import Arrival
from tests.support import report_document

SODIUM = {"test": "Sodium", "value": "140", "unit": "mmol/L", "reference_range": "", "flag": ""}
POTASSIUM = {
    "test": "Potassium",
    "value": "5.9",
    "unit": "mmol/L",
    "reference_range": "",
    "flag": "H",
}


def doc(**fields: Any) -> Any:
    return report_document(**{"results": [SODIUM, POTASSIUM], **fields})


def test_the_first_arrival_is_new() -> None:
    draft = doc()
    assert versions.arrival(None, draft) == (Arrival.NEW, draft)


def test_the_same_results_in_another_order_are_nothing_new() -> None:
    latest = doc(status="notified")
    kind, kept = versions.arrival(latest, doc(results=[POTASSIUM, SODIUM]))
    assert kind is Arrival.SAME and kept is latest


def test_a_changed_value_is_the_next_version_with_its_change_listed() -> None:
    latest = doc(status="delivered")
    draft = doc(results=[SODIUM, {**POTASSIUM, "value": "4.1", "flag": ""}])
    kind, correction = versions.arrival(latest, draft)
    assert kind is Arrival.CORRECTION
    assert (correction["version"], correction["previous_id"]) == (2, latest["_id"])
    assert correction["changes"] == [
        {"what": "Potassium", "before": "5.9 mmol/L (H)", "after": "4.1 mmol/L"}
    ]


def test_changes_name_patient_fields_added_and_removed_tests_and_comments() -> None:
    old = doc()
    new = report_document(
        patient={"phone": "+447700900999"},
        results=[SODIUM, {"test": "Urea", "value": "6", "unit": "mmol/L", "flag": ""}],
        comments="Haemolysed sample",
    )
    assert [(c["what"], c["before"], c["after"]) for c in versions.changes(old, new)] == [
        ("patient phone", old["patient"]["phone"], "+447700900999"),
        ("Potassium", "5.9 mmol/L (H)", ""),
        ("Urea", "", "6 mmol/L"),
        ("comments", "", "Haemolysed sample"),
    ]


def test_corrected_rows_complete_a_waiting_report_instead_of_replacing_it() -> None:
    waiting = doc(status="needs_attention", rejected_rows=[{"row": 5, "reason": "Value is empty"}])
    urea = {"test": "Urea", "value": "6.1", "unit": "mmol/L", "reference_range": "", "flag": ""}
    kind, completed = versions.arrival(waiting, doc(results=[urea]))
    assert kind is Arrival.CORRECTION
    assert [r["test"] for r in completed["results"]] == ["Sodium", "Potassium", "Urea"]
    assert completed["rejected_rows"] == []
    assert [c["what"] for c in completed["changes"]] == ["Urea"]


def test_a_redelivery_is_the_same_source_another_upload_is_not() -> None:
    sheet = {"kind": "sheet", "batch_id": "b1", "rows": [2]}
    assert versions.same_source(sheet, {"kind": "sheet", "batch_id": "b1", "rows": [2, 3]})
    assert not versions.same_source(sheet, {"kind": "sheet", "batch_id": "b2", "rows": [2]})
    lis = {"kind": "lis", "message_id": "m1", "accession": "A"}
    assert versions.same_source(lis, {**lis})
    assert not versions.same_source(lis, {**lis, "message_id": "m2"})
    assert not versions.same_source(sheet, lis)


def test_a_source_older_than_the_latest_versions_arrives_outdated_and_is_not_used() -> None:
    newer = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    latest = doc(source={"kind": "lis", "message_id": "m2", "accession": "A", "at": newer})
    late = doc(
        results=[SODIUM],
        source={"kind": "lis", "message_id": "m1", "accession": "A", "at": newer - timedelta(1)},
    )
    kind, kept = versions.arrival(latest, late)
    assert kind is Arrival.OUTDATED and kept is latest
