"""The second check chosen per lab: receipt PINs read and hashed, one-time codes made, which
check a report's link asks, and what the SMS says for each."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from contracts.v1 import IngestLisResult
from services.infra import fhir_bundle, languages, second_check
from services.infra.documents import AccessDocument
from services.infra.second_check import SecondCheck
from services.infra.settings import Settings
from services.ingest import hl7, logic
from services.notify import check_sms, sms_text

DATA = Path(__file__).parents[1] / "data"
TODAY = date(2026, 3, 2)
TODAY_AT = datetime(2026, 3, 2, 9, 0)
HEADER = ["Patient ID", "Name", "Date of birth", "Phone", "Sample date", "Test", "Value", "PIN"]
LAB = "ResultFlow Demo Laboratory"
LINK = "https://results.example.org/r/" + "A" * 43


def row(pin: object, test: str = "Haemoglobin", patient: str = "P1") -> list[object]:
    return [patient, "Ann Smith", "1980-01-15", "07911 123456", "2026-03-01", test, "13.2", pin]


# --- PINs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "pin"), [("123456", "123456"), ("12 34 56", "123456"), ("0042-17", "004217")]
)
def test_a_receipt_pin_is_its_digits_without_spaces_or_dashes(raw: str, pin: str) -> None:
    assert second_check.normalise_pin(raw) == pin


@pytest.mark.parametrize("raw", ["123", "123456789", "12a456", "", "１２３４", None])
def test_a_pin_that_is_not_4_to_8_digits_is_refused_without_repeating_it(raw: object) -> None:
    with pytest.raises(second_check.PinError) as refused:
        second_check.normalise_pin(raw)
    assert str(refused.value) == "PIN must be 4 to 8 digits"


def test_a_pin_is_kept_as_a_keyed_hash_that_a_plain_hash_cannot_find() -> None:
    kept = second_check.keyed_hash("server-secret", "pin", "123456")
    assert "123456" not in kept
    # Hashing every 6-digit candidate without the secret finds nothing.
    assert kept != hashlib.sha256(b"123456").hexdigest()
    assert kept != second_check.keyed_hash("another-secret", "pin", "123456")
    assert kept != second_check.keyed_hash("server-secret", "code", "123456")
    assert second_check.hash_matches("server-secret", "pin", "123456", kept)
    assert not second_check.hash_matches("server-secret", "pin", "123457", kept)
    assert not second_check.hash_matches("server-secret", "pin", "123456", None)


def test_a_sheet_pin_column_goes_with_the_report_and_a_bad_pin_rejects_its_row() -> None:
    rows = [row("12 34 56"), row("123456", "CRP"), row("12", "Ferritin", "P2")]
    outcome = logic.group_rows(HEADER, rows, "GB", TODAY)
    (draft,) = outcome.drafts
    assert draft.pin == "123456"
    assert [(r.row, r.reason) for r in outcome.rejected] == [(4, "PIN must be 4 to 8 digits")]


def test_rows_of_one_report_with_different_pins_are_not_mixed() -> None:
    outcome = logic.group_rows(HEADER, [row("1111"), row("2222", "CRP")], "GB", TODAY)
    assert outcome.drafts[0].pin == "1111"
    assert [r.row for r in outcome.rejected] == [3]


def test_the_report_document_never_holds_the_pin_itself() -> None:
    (draft,) = logic.group_rows(HEADER, [row("987654")], "GB", TODAY).drafts
    document = logic.report_document(
        draft,
        report_id="r1",
        lab_id="demo-lab",
        correlation_id="c1",
        source={"kind": "sheet", "batch_id": "b1", "rows": [2]},
        now=TODAY_AT,
    )
    assert "987654" not in json.dumps(document, default=str)


def test_hl7_carries_the_receipt_pin_in_obr_20() -> None:
    raw = (DATA / "hl7" / "oru_r01_v251.hl7").read_bytes().decode()
    segments = raw.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    for i, segment in enumerate(segments):
        if segment.startswith("OBR"):
            fields = segment.split("|")
            fields[20] = "4321-99"
            segments[i] = "|".join(fields)
    message = "\r".join(segments).encode()
    (result,) = hl7.to_results(hl7.parse(message), "demo-lab", "GB")
    assert result.receipt_pin == "432199"
    bad = message.replace(b"4321-99", b"43")
    with pytest.raises(hl7.Hl7Error) as refused:
        hl7.to_results(hl7.parse(bad), "demo-lab", "GB")
    assert (refused.value.segment, refused.value.field) == ("OBR", 20)
    assert "43" not in refused.value.text.replace("4 to 8", "")


def test_fhir_carries_the_receipt_pin_in_a_diagnostic_report_extension() -> None:
    bundle: dict[str, Any] = json.loads((DATA / "fhir" / "bundle_collection.json").read_text())
    report = next(
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    report["extension"] = [{"url": fhir_bundle.RECEIPT_PIN, "valueString": "55 66 77"}]
    (result,) = fhir_bundle.to_results(bundle, "demo-lab", "GB")
    assert result.receipt_pin == "556677"
    broken = copy.deepcopy(bundle)
    broken["entry"][1]["resource"]["extension"][0]["valueString"] = "5"
    with pytest.raises(fhir_bundle.FhirError) as refused:
        fhir_bundle.to_results(broken, "demo-lab", "GB")
    assert [i.expression for i in refused.value.issues] == [
        "Bundle.entry[1].resource.extension[0].valueString"
    ]


def test_an_lis_message_pin_must_be_digits_and_never_shows_in_its_repr() -> None:
    fields = {
        "correlation_id": "c",
        "message_id": "m",
        "lab_id": "demo-lab",
        "accession": "A1",
        "patient": {
            "patient_id": "P1",
            "name": "Ann",
            "date_of_birth": "1980-01-15",
            "phone": "+447911123456",
        },
        "sample_date": "2026-03-01",
        "results": [{"test": "Hb", "value": "13"}],
    }
    message = IngestLisResult.model_validate({**fields, "receipt_pin": "246810"})
    assert "246810" not in repr(message)
    with pytest.raises(ValueError, match="receipt_pin"):
        IngestLisResult.model_validate({**fields, "receipt_pin": "12a4"})


# --- one-time codes -------------------------------------------------------------------------


def test_a_code_is_six_random_digits() -> None:
    codes = {second_check.new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 190  # from the CSPRNG: practically never the same twice


def test_a_code_works_for_ten_minutes() -> None:
    assert second_check.CODE_TTL.total_seconds() == 600


@pytest.mark.parametrize(("typed", "code"), [("123456", "123456"), (" 123 456 ", "123456")])
def test_a_typed_code_may_have_spaces(typed: str, code: str) -> None:
    assert second_check.parse_code(typed) == code


@pytest.mark.parametrize("typed", ["12345", "1234567", "12345a", "", None])
def test_what_cannot_be_a_code_is_not_one(typed: str | None) -> None:
    assert second_check.parse_code(typed) is None


# --- which check a report asks --------------------------------------------------------------


def settings(**values: Any) -> Settings:
    return Settings(**values)


def test_each_lab_asks_its_own_check_and_the_rest_the_default() -> None:
    chosen = settings(second_check="sms_code", second_check_by_lab="lab-b=pin, lab-c=date_of_birth")
    assert check_sms.lab_check(chosen, "lab-a") is SecondCheck.SMS_CODE
    assert check_sms.lab_check(chosen, "lab-b") is SecondCheck.PIN
    assert check_sms.lab_check(chosen, "lab-c") is SecondCheck.DATE_OF_BIRTH
    assert check_sms.lab_check(settings(), "lab-a") is SecondCheck.DATE_OF_BIRTH


def test_a_misspelt_lab_setting_is_refused_naming_the_mistake() -> None:
    with pytest.raises(ValueError, match="'birthday' is not a second check"):
        second_check.parse_by_lab("lab-b=birthday")
    with pytest.raises(ValueError, match="is not lab=check"):
        second_check.parse_by_lab("lab-b")
    # At start: a service with a misspelt setting does not run at all.
    with pytest.raises(ValueError, match="'birthday' is not a second check"):
        settings(second_check_by_lab="lab-a=pin, lab-b=birthday")


def access() -> AccessDocument:
    return {"token_hash": "h", "expires_at": TODAY_AT, "failed_attempts": 0, "locked": False}


def test_the_link_records_the_check_decided_when_it_is_made() -> None:
    pin_lab = settings(second_check_by_lab="lab-b=pin")
    with_pin = access()
    check_sms.record_check(with_pin, pin_lab, {"lab_id": "lab-b", "pin_hash": "x"})
    assert (with_pin["check"], "check_note" in with_pin) == ("pin", False)
    # Later the lab changes its setting: the stored check is what the link keeps asking.
    assert second_check.check_of(with_pin) is SecondCheck.PIN


def test_a_pin_labs_report_without_a_pin_asks_the_date_of_birth_and_says_why() -> None:
    link = access()
    check_sms.record_check(link, settings(second_check="pin"), {"lab_id": "demo-lab"})
    assert link["check"] == "date_of_birth"
    assert link["check_note"] == second_check.NO_PIN_NOTE


def test_links_made_before_the_choice_existed_ask_the_date_of_birth() -> None:
    assert second_check.check_of(access()) is SecondCheck.DATE_OF_BIRTH
    assert second_check.check_of(None) is SecondCheck.DATE_OF_BIRTH


# --- what the SMS says ----------------------------------------------------------------------

SAYS = {
    SecondCheck.DATE_OF_BIRTH: "date of birth",
    SecondCheck.PIN: "PIN",
    SecondCheck.SMS_CODE: "we will text you a code",
}


@pytest.mark.parametrize("check", list(SecondCheck))
@pytest.mark.parametrize("updated", [False, True])
@pytest.mark.parametrize("until", ["", "26 Dec 2026"])
def test_the_link_sms_says_which_check_will_be_asked_in_one_segment(
    check: SecondCheck, updated: bool, until: str
) -> None:
    body = check_sms.sms_body(check, LAB, LINK, updated=updated, until=until)
    assert SAYS[check] in body
    assert LINK in body
    assert sms_text.fits_one_segment(body)


@pytest.mark.parametrize("check", [SecondCheck.PIN, SecondCheck.SMS_CODE])
def test_the_reminder_says_which_check_will_be_asked_in_one_segment(check: SecondCheck) -> None:
    body = check_sms.reminder_body(check, LAB, LINK, "26 Dec 2026")
    assert ("PIN" if check is SecondCheck.PIN else "code") in body
    assert sms_text.fits_one_segment(body)


def test_the_code_sms_carries_the_code_and_its_expiry_in_one_segment_and_no_link() -> None:
    body = check_sms.code_body(LAB, "042917")
    assert "042917" in body and "10 minutes" in body
    assert "http" not in body
    assert sms_text.fits_one_segment(body)


@pytest.mark.parametrize("language", languages.SHIPPED)
@pytest.mark.parametrize("check", [SecondCheck.PIN, SecondCheck.SMS_CODE])
def test_every_language_texts_the_pin_and_code_wordings_in_one_gsm7_segment(
    language: str, check: SecondCheck
) -> None:
    bodies = [
        check_sms.sms_body(check, LAB, LINK, updated=updated, language=language)
        for updated in (False, True)
    ]
    bodies.append(check_sms.reminder_body(check, LAB, LINK, "26 Dec 2026", language=language))
    bodies.append(check_sms.code_body(LAB, "042917", language=language))
    for body in bodies:
        assert sms_text.sms_units(body)[0] == "gsm7", body
        assert sms_text.fits_one_segment(body), body
