"""HL7 v2 ORU^R01 (2.3 to 2.5.1) -> `IngestLisResult`, and the ACK that answers it. Pure.

One message may carry several orders (OBR): each becomes one report, keyed by its accession
(OBR-3 filler order number, else OBR-2 placer). A message whose OBR-25 or any OBX-11 is `C`
is a correction: ingest stores it as the report's next version (`services.ingest.versions`).
Parsing, separators and repetitions are python-hl7's; escape sequences (\\X41\\, \\F\\, \\.br\\...)
are decoded by `hl7_text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import hl7

from contracts.flags import ACCEPTED, normalise_flag
from contracts.v1 import IngestLisResult, LabResult, Patient, utcnow
from services.infra import second_check
from services.infra.phones import PhoneError, normalise_phone
from services.ingest import hl7_text

VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
RESULT_STATUSES = ("F", "C")  # final, corrected; others (preliminary...) are not reported
SEX = {"F": "F", "M": "M"}
# XTN-3 telecommunication equipment types that are not a phone line.
NOT_PHONES = {"NET", "INTERNET", "X.400", "FX", "BP"}
# HL7 table 0357 (message error condition codes).
REQUIRED_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_VERSION = "203"
APPLICATION_ERROR = "207"


@dataclass(frozen=True)
class Hl7Error(Exception):
    """Why a message cannot be used: the ACK code (AE: fix the content; AR: not for us), where
    (segment, field) and what, said so that the lab's interface team can fix it."""

    text: str
    segment: str = ""
    field: int = 0
    code: str = REQUIRED_MISSING
    ack: str = "AE"

    def __str__(self) -> str:
        where = f"{self.segment}-{self.field}" if self.field else self.segment
        return f"{where}: {self.text}" if where else self.text


def parse(raw: bytes) -> hl7.Message:
    """The message in an MLLP block (UTF-8, any line ending); AR when it is no HL7 message."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Hl7Error(f"not UTF-8 text (byte {error.start})", ack="AR", code="102") from None
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    text = "\r".join(line for line in lines if line.strip())  # no empty segments
    if not text.startswith("MSH"):
        raise Hl7Error("the message does not start with an MSH segment", "MSH", ack="AR")
    try:
        return hl7.parse(text)
    except Exception as error:  # python-hl7 raises several kinds on malformed text
        raise Hl7Error(f"not a readable HL7 message ({type(error).__name__})", ack="AR") from None


def value(segment: Any, field: int, repeat: int = 1, component: int = 1, sub: int = 1) -> str:
    """One unescaped leaf of a segment ("" when absent), escape sequences decoded for print
    (`hl7_text`: MSH-1 and MSH-2 are the separators themselves, left as they are)."""
    try:
        raw = hl7_text.leaf(segment, field, repeat, component, sub)
    except (IndexError, KeyError):
        return ""
    if str(segment[0][0]) == "MSH" and field in (1, 2):
        return raw.strip()
    return hl7_text.unescape(raw, segment.separators, segment.esc).strip()


def repeats(segment: Any, field: int) -> int:
    return len(segment(field)) if field < len(segment) else 0


def to_results(message: hl7.Message, lab_id: str, region: str) -> list[IngestLisResult]:
    """Every order of an ORU^R01 as one `IngestLisResult`; raises `Hl7Error`."""
    msh = message.segment("MSH")
    kind = f"{value(msh, 9, 1, 1)}^{value(msh, 9, 1, 2)}"
    if kind != "ORU^R01":
        raise Hl7Error(f"message type '{kind}' is not ORU^R01", "MSH", 9, "200", "AR")
    version = value(msh, 12)
    if version not in VERSIONS:
        raise Hl7Error(f"version '{version}' is not one of {', '.join(VERSIONS)}", "MSH", 12, "203")
    control_id = value(msh, 10)
    if not control_id:
        raise Hl7Error("message control id is empty", "MSH", 10)
    segments = [segment for segment in message if str(segment[0][0]) != "MSH"]
    pids = [s for s in segments if str(s[0][0]) == "PID"]
    if not pids:
        raise Hl7Error("the message has no PID segment (the patient)", "PID")
    patient = _patient(pids[0], region)
    orders = _orders(segments)
    if not orders:
        raise Hl7Error("the message has no OBR segment (the order)", "OBR")
    results = []
    for number, (obr, order_notes, observations) in enumerate(orders, start=1):
        results.append(
            _order(obr, order_notes, observations, patient, lab_id, control_id, number, len(orders))
        )
    return results


def _orders(segments: list[Any]) -> list[tuple[Any, list[str], list[tuple[Any, list[str]]]]]:
    """(OBR, its notes, [(OBX, its notes)]) in message order."""
    orders: list[tuple[Any, list[str], list[tuple[Any, list[str]]]]] = []
    for segment in segments:
        name = str(segment[0][0])
        if name == "OBR":
            orders.append((segment, [], []))
        elif name == "OBX" and orders:
            orders[-1][2].append((segment, []))
        elif name == "NTE" and orders:
            note = "\n".join(value(segment, 3, r) for r in range(1, repeats(segment, 3) + 1))
            if note.strip():
                (orders[-1][2][-1][1] if orders[-1][2] else orders[-1][1]).append(note.strip())
    return orders


def _patient(pid: Any, region: str) -> Patient:
    identifier = value(pid, 3) or value(pid, 2) or value(pid, 4)
    if not identifier:
        raise Hl7Error("patient identifier list is empty", "PID", 3)
    family, given, middle = value(pid, 5, 1, 1), value(pid, 5, 1, 2), value(pid, 5, 1, 3)
    name = " ".join(part for part in (given, middle, family) if part)
    if not name:
        raise Hl7Error("patient name is empty", "PID", 5)
    return Patient(
        patient_id=identifier,
        name=name,
        date_of_birth=_date(value(pid, 7), "PID", 7, "date of birth"),
        sex=SEX.get(value(pid, 8).upper(), "U"),  # type: ignore[arg-type]
        phone=_mobile(pid, region),
        # PID-15 primary language (CWE: its identifier, ISO 639-1 here); unknown: lab default.
        language=value(pid, 15)[:35],
    )


def _mobile(pid: Any, region: str) -> str:
    """The first mobile number in PID-13 (home) or PID-14 (business), in any XTN form: the
    2.3 text in XTN-1, country/area/local (XTN-5..7) or the unformatted XTN-12; a number
    marked as a cell phone (XTN-3 `CP`) first."""
    candidates: list[tuple[bool, str]] = []
    for field in (13, 14):
        for r in range(1, repeats(pid, field) + 1):
            equipment = value(pid, field, r, 3).upper()
            if equipment in NOT_PHONES:
                continue
            country, area, local = (value(pid, field, r, c) for c in (5, 6, 7))
            number = value(pid, field, r, 12) or (
                f"{'+' + country if country else ''}{area}{local}" if local else ""
            )
            number = number or value(pid, field, r, 1)
            if number and "@" not in number:
                candidates.append((equipment != "CP", number))
    for _, number in sorted(candidates, key=lambda candidate: candidate[0]):
        try:
            return normalise_phone(number, region)
        except PhoneError:
            continue
    raise Hl7Error("no mobile number in PID-13 or PID-14 (needed to text the patient)", "PID", 13)


def _date(raw: str, segment: str, field: int, what: str) -> date:
    digits = raw[:8]
    if not digits:
        raise Hl7Error(f"{what} is empty", segment, field)
    try:
        return datetime.strptime(digits, "%Y%m%d").date()
    except ValueError:
        raise Hl7Error(
            f"{what} '{raw}' is not an HL7 date (YYYYMMDD)", segment, field, "102"
        ) from None


def _status(raw: str, segment: str, field: int) -> bool:
    """Whether a result status says "corrected"; refuses statuses that are not reported."""
    if raw and raw.upper() not in RESULT_STATUSES:
        text = f"result status '{raw}' is not final (F) or corrected (C); send final results"
        raise Hl7Error(text, segment, field, "103")
    return raw.upper() == "C"


def _order(
    obr: Any,
    notes: list[str],
    observations: list[tuple[Any, list[str]]],
    patient: Patient,
    lab_id: str,
    control_id: str,
    number: int,
    orders: int,
) -> IngestLisResult:
    accession = value(obr, 3) or value(obr, 2)
    if not accession:
        raise Hl7Error("no filler (OBR-3) or placer (OBR-2) order number", "OBR", 3)
    collected = value(obr, 7) or value(obr, 14)
    sample_date = _date(collected, "OBR", 7, "observation (collection) date/time")
    _status(value(obr, 25), "OBR", 25)
    if not observations:
        raise Hl7Error(f"order {accession} has no OBX segment (no results)", "OBX")
    results, comments = [], list(notes)
    for index, (obx, obx_notes) in enumerate(observations, start=1):
        result = _result(obx, index)
        results.append(result)
        comments.extend(f"{result.test}: {note}" for note in obx_notes)
    pin = value(obr, 20)  # OBR-20 filler field 1: the receipt PIN (docs/second-check.md)
    try:
        receipt_pin = second_check.normalise_pin(pin) if pin else None
    except second_check.PinError as error:
        raise Hl7Error(f"order {accession}: receipt {error}", "OBR", 20, DATA_TYPE_ERROR) from None
    return IngestLisResult(
        correlation_id=f"hl7-{control_id}"[:100],
        created_at=utcnow(),
        message_id=control_id if orders == 1 else f"{control_id}/{number}",
        lab_id=lab_id,
        accession=accession,
        patient=patient,
        sample_date=sample_date,
        results=results,
        comments="\n".join(comments),
        receipt_pin=receipt_pin,
    )


def _result(obx: Any, index: int) -> LabResult:
    where = f"OBX {index}"
    test = value(obx, 3, 1, 2) or value(obx, 3, 1, 1)
    if not test:
        raise Hl7Error(f"{where}: observation identifier is empty", "OBX", 3)
    _status(value(obx, 11), "OBX", 11)
    kind = value(obx, 2).upper()
    measured = _value(obx, kind, where)
    if not measured:
        raise Hl7Error(f"{where} ({test}): the value is empty", "OBX", 5)
    raw_flags = [value(obx, 8, r) for r in range(1, repeats(obx, 8) + 1)]
    raw_flag = next((flag for flag in raw_flags if flag), "")
    flag = normalise_flag(raw_flag)
    if flag is None:
        text = f"{where} ({test}): abnormal flag '{raw_flag[:20]}' is not {ACCEPTED}"
        raise Hl7Error(text, "OBX", 8, "103")
    return LabResult(
        test=test[:200],
        value=measured[:200],
        unit=value(obx, 6, 1, 1) or value(obx, 6, 1, 2),
        reference_range=value(obx, 7),
        flag=flag,
    )


def _value(obx: Any, kind: str, where: str) -> str:
    """OBX-5 as printed: NM as is, SN `<^0.3` as `< 0.3` (`^1^:^128` as `1:128`), CE/CWE as
    their text (else code), ST/TX/FT repetitions joined."""
    count = repeats(obx, 5)
    if kind == "SN":
        comparator, first, separator, second = (value(obx, 5, 1, c) for c in (1, 2, 3, 4))
        joined = f"{first}{separator}{second}" if separator else first
        return f"{comparator} {joined}".strip()
    if kind in ("CE", "CWE", "CNE"):
        return value(obx, 5, 1, 2) or value(obx, 5, 1, 1)
    if kind == "NM":
        number = value(obx, 5)
        if number and not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", number):
            raise Hl7Error(
                f"{where}: numeric (NM) value '{number[:20]}' is not a number", "OBX", 5, "102"
            )
        return number
    if kind in ("ST", "TX", "FT", ""):
        return " ".join(value(obx, 5, r) for r in range(1, count + 1)).strip()
    raise Hl7Error(
        f"{where}: value type '{kind}' is not NM, ST, TX, FT, SN, CE or CWE", "OBX", 2, "103"
    )


def ack(message: hl7.Message | None, code: str, error: Hl7Error | None = None) -> bytes:
    """The original-mode ACK: MSA (and, on an error, MSA-3 and ERR naming what and where)."""
    if message is None:  # nothing readable to answer: a bare ACK with an empty MSA-2
        now = utcnow().strftime("%Y%m%d%H%M%S")
        message = hl7.parse(f"MSH|^~\\&|||RESULTFLOW||{now}||ORU^R01|none|P|2.5.1")
    reply = message.create_ack(code, application="RESULTFLOW")
    text = ""
    if error is not None:
        text = str(message.escape(str(error)[:200]))
        reply.segment("MSA").assign_field(text, 3)
        segment = error.segment or "MSH"
        err = hl7.parse(
            f"{reply.segment('MSH')}\rERR|{segment}^1^{error.field or ''}^{error.code}"
            f"|{segment}^1^{error.field or ''}|{error.code}^{_code_text(error.code)}^HL70357|E"
            f"||||{text}"
        ).segment("ERR")
        reply.append(err)
    return str(reply).encode("utf-8")


def _code_text(code: str) -> str:
    return {
        "101": "Required field missing",
        "102": "Data type error",
        "103": "Table value not found",
        "200": "Unsupported message type",
        "203": "Unsupported version id",
        "207": "Application internal error",
    }.get(code, "Error")
