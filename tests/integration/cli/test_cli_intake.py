"""`resultflow intake check`: what intake would make of a file, as one JSON object."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from devtools.demo import demo_rows, sheet_of
from services.cli import main
from services.infra.settings import Settings


def check(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    with pytest.raises(SystemExit) as exit_:
        main(["intake", "check", str(path), *args])
    return int(exit_.value.code or 0), json.loads(capsys.readouterr().out)


def test_intake_check_prints_the_reports_and_rejected_rows_of_a_sheet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = demo_rows(2, sample_date=date(2026, 11, 20))
    rows[3][4] = "12345"  # a phone number that is no number
    path = tmp_path / "export.xlsx"
    path.write_bytes(sheet_of(rows))
    status, answer = check(path, capsys, "--region", "GB")
    assert status == 0 and answer["kind"] == "sheet" and answer["error"] is None
    first = answer["reports"][0]
    assert first["patient"]["phone"].startswith("+44")
    assert first["sample_date"] == "2026-11-20" and first["corrected"] is False
    assert set(first["results"][0]) == {"test", "value", "unit", "reference_range", "flag"}
    [rejected] = answer["rejected"]
    assert (rejected["row"], rejected["column"]) == (5, "Phone")


def test_intake_check_of_a_refused_file_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("just;some;notes\n1;2;3\n")
    status, answer = check(path, capsys)
    assert status == 1
    assert answer["reports"] == [] and "no header row found" in answer["error"]


@pytest.mark.usefixtures("cli_env")
def test_intake_check_with_a_stored_profile_reads_the_labs_columns_and_names_unknown_ones(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.integration.ingest.test_sheet_profiles import SYSMEX, sysmex_sheet

    with MongoClient[dict[str, Any]](settings.mongodb_uri) as client:
        document: dict[str, Any] = {**SYSMEX.model_dump(mode="json"), "lab_id": settings.lab_id}
        client[settings.mongodb_database].sheet_profiles.insert_one(document)
    path = tmp_path / "sysmex.xlsx"
    path.write_bytes(sysmex_sheet())
    status, answer = check(path, capsys, "--profile", "Sysmex")
    missing_status, missing = check(path, capsys, "--profile", "Nope")
    assert status == 0 and answer["profile"] == "Sysmex" and answer["rejected"] == []
    [report] = answer["reports"]
    assert report["patient"]["phone"] == "+33612345678"
    assert report["patient"]["date_of_birth"] == "1980-04-03"
    assert answer["unknown_columns"] == ["Ward"]
    assert missing_status == 1 and missing["error"] == "sheet profile 'Nope' is not known"


DATA = Path(__file__).resolve().parents[2] / "data"


def test_intake_check_reads_an_hl7_message_and_names_a_correction(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, answer = check(DATA / "hl7" / "oru_r01_v251.hl7", capsys, "--region", "GB")
    assert (status, answer["kind"], answer["error"]) == (0, "hl7v2", None)
    [report] = answer["reports"]
    assert report["accession"] and report["patient"]["phone"].startswith("+")
    assert report["corrected"] is False and report["results"]
    status, answer = check(DATA / "hl7" / "oru_r01_v23_correction.hl7", capsys)
    assert status == 0 and answer["reports"][0]["corrected"] is True


def test_intake_check_refuses_an_hl7_message_without_a_mobile_naming_the_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, answer = check(DATA / "hl7" / "oru_r01_no_mobile.hl7", capsys)
    assert status == 1 and answer["kind"] == "hl7v2" and answer["error"].startswith("PID-13")


def test_intake_check_reads_a_fhir_bundle_and_names_what_is_wrong_in_a_broken_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, answer = check(DATA / "fhir" / "bundle_collection.json", capsys, "--region", "GB")
    assert (status, answer["kind"]) == (0, "fhir") and len(answer["reports"]) == 1
    status, answer = check(DATA / "fhir" / "bundle_broken.json", capsys)
    assert status == 1 and "Bundle.entry" in answer["error"]
