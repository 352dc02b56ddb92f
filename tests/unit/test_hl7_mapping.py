"""HL7 v2 ORU^R01 messages (the sample files in tests/data/hl7) as the reports they become,
and the ACKs that say what is wrong with the ones that cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.v1 import Flag
from services.ingest import hl7

DATA = Path(__file__).parents[1] / "data" / "hl7"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def mapped(raw: bytes) -> list[hl7.IngestLisResult]:
    return hl7.to_results(hl7.parse(raw), "demo-lab", "GB")


def refusal(raw: bytes) -> hl7.Hl7Error:
    with pytest.raises(hl7.Hl7Error) as caught:
        mapped(raw)
    return caught.value


def test_a_251_message_becomes_one_report_with_patient_order_results_and_notes() -> None:
    (result,) = mapped(sample("oru_r01_v251.hl7"))
    assert (result.message_id, result.accession, result.lab_id) == (
        "MSG00001",
        "ACC-2026-0001",
        "demo-lab",
    )
    patient = result.patient
    assert (patient.patient_id, patient.name, patient.sex) == ("P-1001", "José María Núñez", "M")
    assert patient.date_of_birth.isoformat() == "1980-01-15"
    assert patient.phone == "+447911123456"  # the CP number, not the home landline first
    assert result.sample_date.isoformat() == "2026-02-28"
    values = [(r.test, r.value, r.unit, r.reference_range, r.flag) for r in result.results]
    assert values == [
        ("Haemoglobin", "13.2", "g/dL", "13.0-17.0", Flag.NORMAL),
        ("White cells", "12.1", "10*9/L", "4.0-11.0", Flag.HIGH),
        ("CRP", "< 0.3", "mg/L", "0.0-5.0", Flag.NORMAL),
        ("HBsAg", "Negative", "", "", Flag.NEGATIVE),
        ("Comment", "Fasting sample| no medication", "", "", Flag.NORMAL),
    ]
    assert result.comments == (
        "Sample slightly haemolysed & re-checked\nComment: Taken before breakfast"
    )


def test_a_23_correction_with_a_plain_phone_number_maps_with_its_placer_number() -> None:
    (result,) = mapped(sample("oru_r01_v23_correction.hl7"))
    assert result.accession == "ACC-23-0002"
    assert result.patient.phone == "+447911123457"
    assert result.results[0].flag is Flag.CRITICAL_HIGH


def test_lf_line_endings_and_several_orders_make_one_report_per_order() -> None:
    raw = sample("oru_r01_v251.hl7").replace(b"\r", b"\n")
    obr = b"\nOBR|2||ACC-2026-0002|GLU^Glucose|||20260228081500\nOBX|1|NM|GLU^Glucose||5.0|mmol/L\n"
    results = mapped(raw + obr)
    assert [(r.message_id, r.accession) for r in results] == [
        ("MSG00001/1", "ACC-2026-0001"),
        ("MSG00001/2", "ACC-2026-0002"),
    ]


def test_a_message_without_a_mobile_number_is_refused_naming_pid_13() -> None:
    error = refusal(sample("oru_r01_no_mobile.hl7"))
    assert (error.ack, error.segment, error.field) == ("AE", "PID", 13)
    assert "no mobile number" in str(error)


@pytest.mark.parametrize(
    ("change", "where", "words"),
    [
        ((b"PID|1||P-1001", b"ZZZ|1||P-1001"), ("PID", 0), "no PID segment"),
        ((b"OBX|", b"ZBX|"), ("OBX", 0), "has no OBX segment"),
        ((b"|13.2|", b"|13,2x|"), ("OBX", 5), "is not a number"),
        ((b"|N|||F", b"|QQ|||F"), ("OBX", 8), "abnormal flag 'QQ'"),
        ((b"||||F\r", b"||||P\r"), ("OBX", 11), "result status 'P'"),
        ((b"|19800115|", b"|1980-01-15|"), ("PID", 7), "is not an HL7 date"),
        ((b"|2.5.1|", b"|2.6|"), ("MSH", 12), "version '2.6'"),
        ((b"ORD-77|ACC-2026-0001|", b"||"), ("OBR", 3), "order number"),
    ],
)
def test_unusable_content_is_refused_with_ae_saying_what_and_where(
    change: tuple[bytes, bytes], where: tuple[str, int], words: str
) -> None:
    raw = sample("oru_r01_v251.hl7").replace(*change)
    error = refusal(raw)
    assert (error.segment, error.field) == where
    assert error.ack == "AE" and words in str(error)


def test_other_message_types_and_non_hl7_bytes_are_rejected_with_ar() -> None:
    adt = sample("oru_r01_v251.hl7").replace(b"ORU^R01^ORU_R01", b"ADT^A01")
    assert refusal(adt).ack == "AR"
    with pytest.raises(hl7.Hl7Error) as caught:
        hl7.parse(b"\xff\xfegarbage")
    assert caught.value.ack == "AR"


def test_the_ack_echoes_the_control_id_and_an_error_names_the_field() -> None:
    message = hl7.parse(sample("oru_r01_no_mobile.hl7"))
    accepted = hl7.ack(message, "AA").decode().split("\r")
    assert accepted[1] == "MSA|AA|MSG-BAD-1"
    error = hl7.Hl7Error("no mobile | number", "PID", 13)
    segments = hl7.ack(message, "AE", error).decode().split("\r")
    assert segments[0].split("|")[8] == "ACK^R01^ACK"
    assert segments[1].startswith("MSA|AE|MSG-BAD-1|PID-13: no mobile \\F\\ number")
    assert segments[2].startswith("ERR|PID^1^13^101|PID^1^13|101^Required field missing^HL70357|E")


def test_an_unreadable_message_still_gets_an_ar_ack() -> None:
    reply = hl7.ack(None, "AR", hl7.Hl7Error("not HL7", ack="AR")).decode()
    assert "\rMSA|AR|" in reply and "not HL7" in reply
