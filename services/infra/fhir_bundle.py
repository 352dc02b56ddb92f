"""FHIR R4 Bundle -> `IngestLisResult` messages, one per DiagnosticReport. Pure.

Both FHIR doors use it: the gateway (`POST /fhir/r4/Bundle`) to answer an OperationOutcome
at once, and ingest for the `IngestFhirBundle` command, which LIS systems may also publish
straight onto RabbitMQ. The Bundle is validated with fhir.resources' R4 models first; every
problem is an `Issue` with a FHIRPath-like `expression` saying where.

A DiagnosticReport whose status is `corrected` or `amended` replaces what its accession had
(ingest stores it as the next version); `preliminary`, `registered`... are not reported.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from contracts.flags import ACCEPTED, normalise_flag
from contracts.v1 import IngestLisResult, LabResult, Patient, utcnow
from services.infra import second_check
from services.infra.phones import PhoneError, normalise_phone

BUNDLE_TYPES = ("collection", "transaction", "message")
REPORTED = ("final", "amended", "corrected", "appended")
SEX = {"female": "F", "male": "M"}
MAX_ISSUES = 50
# DiagnosticReport.extension carrying the PIN printed on the collection receipt (valueString).
RECEIPT_PIN = "urn:resultflow:fhir:StructureDefinition:receipt-pin"


@dataclass(frozen=True)
class Issue:
    expression: str
    text: str
    code: str = "invalid"  # the FHIR issue-type code: invalid, required, value, not-supported


class FhirError(ValueError):
    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(f"{i.expression}: {i.text}" for i in issues[:5]))
        self.issues = issues[:MAX_ISSUES]


def bundle_id(bundle: dict[str, Any]) -> str:
    """The sender's id of the bundle (its identifier, else its id), else a digest of its
    content: a re-sent bundle is recognised either way."""
    identifier = bundle.get("identifier") or {}
    if isinstance(identifier, dict) and identifier.get("value"):
        return str(identifier["value"])[:80]
    if bundle.get("id"):
        return str(bundle["id"])[:80]
    canonical = json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode()
    return "sha256-" + hashlib.sha256(canonical).hexdigest()[:40]


def validate(bundle: Any) -> dict[str, Any]:
    """The bundle, once fhir.resources accepts it as an R4 Bundle; raises `FhirError`."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError([Issue("Bundle", "the body is not a FHIR Bundle resource (JSON)")])
    try:
        Bundle.model_validate(bundle)
    except ValidationError as error:
        issues = [
            Issue(_expression(problem["loc"]), str(problem["msg"]), "structure")
            for problem in error.errors()
        ]
        raise FhirError(issues) from None
    if bundle.get("type") not in BUNDLE_TYPES:
        text = f"type '{bundle.get('type')}' is not one of {', '.join(BUNDLE_TYPES)}"
        raise FhirError([Issue("Bundle.type", text, "not-supported")])
    return bundle


def _expression(location: tuple[Any, ...]) -> str:
    path = "Bundle"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def to_results(bundle: Any, lab_id: str, region: str) -> list[IngestLisResult]:
    """Every DiagnosticReport of a valid Bundle as one `IngestLisResult`; raises `FhirError`
    listing every problem found."""
    bundle = validate(bundle)
    sender_id = bundle_id(bundle)
    entries = [e for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]
    by_reference: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, entry in enumerate(entries):
        resource = entry["resource"]
        if entry.get("fullUrl"):
            by_reference[entry["fullUrl"]] = (index, resource)
        if resource.get("id"):
            by_reference[f"{resource['resourceType']}/{resource['id']}"] = (index, resource)
    reports = [(i, e["resource"]) for i, e in enumerate(entries) if _is(e, "DiagnosticReport")]
    if not reports:
        raise FhirError([Issue("Bundle.entry", "the bundle has no DiagnosticReport", "required")])
    context = _Context(by_reference, entries, region)
    results, issues = [], []
    for number, (index, report) in enumerate(reports, start=1):
        message_id = sender_id if len(reports) == 1 else f"{sender_id}/{number}"
        try:
            results.append(context.report(index, report, lab_id, message_id))
        except FhirError as error:
            issues.extend(error.issues)
    if issues:
        raise FhirError(issues)
    return results


def _is(entry: dict[str, Any], kind: str) -> bool:
    return bool(entry["resource"].get("resourceType") == kind)


def _text(concept: dict[str, Any] | None) -> str:
    """A CodeableConcept as words: its text, else its first coding's display, else code."""
    concept = concept or {}
    codings = concept.get("coding") or [{}]
    return str(concept.get("text") or codings[0].get("display") or codings[0].get("code") or "")


class _Context:
    def __init__(
        self,
        by_reference: dict[str, tuple[int, dict[str, Any]]],
        entries: list[dict[str, Any]],
        region: str,
    ) -> None:
        self._by_reference = by_reference
        self._patients = [(i, e["resource"]) for i, e in enumerate(entries) if _is(e, "Patient")]
        self._region = region

    def _resolve(self, reference: dict[str, Any] | None, kind: str) -> tuple[int, dict[str, Any]]:
        found = self._by_reference.get(str((reference or {}).get("reference", "")))
        if found is None or found[1].get("resourceType") != kind:
            raise KeyError(kind)
        return found

    def report(
        self, index: int, report: dict[str, Any], lab_id: str, message_id: str
    ) -> IngestLisResult:
        where = f"Bundle.entry[{index}].resource"
        issues: list[Issue] = []
        if report.get("status") not in REPORTED:
            text = f"status '{report.get('status')}' is not {', '.join(REPORTED)}"
            issues.append(Issue(f"{where}.status", text, "value"))
        identifiers = report.get("identifier") or []
        accession = next((i.get("value") for i in identifiers if i.get("value")), report.get("id"))
        if not accession:
            issues.append(Issue(f"{where}.identifier", "no identifier (accession)", "required"))
        try:
            patient_index, patient = self._resolve(report.get("subject"), "Patient")
        except KeyError:
            if len(self._patients) != 1:
                text = "subject does not reference a Patient in the bundle"
                raise FhirError([*issues, Issue(f"{where}.subject", text, "required")]) from None
            patient_index, patient = self._patients[0]
        observed: list[tuple[int, dict[str, Any]]] = []
        for n, reference in enumerate(report.get("result") or []):
            try:
                observed.append(self._resolve(reference, "Observation"))
            except KeyError:
                text = "does not reference an Observation in the bundle"
                issues.append(Issue(f"{where}.result[{n}]", text, "required"))
        if not report.get("result"):
            issues.append(Issue(f"{where}.result", "the report has no results", "required"))
        when = report.get("effectiveDateTime") or (report.get("effectivePeriod") or {}).get("start")
        when = when or next((o.get("effectiveDateTime") for _, o in observed), None)
        if not when:
            text = "no effectiveDateTime (collection time)"
            issues.append(Issue(f"{where}.effectiveDateTime", text, "required"))
        results: list[LabResult] = []
        comments: list[str] = []
        for obs_index, observation in observed:
            try:
                result = _result(f"Bundle.entry[{obs_index}].resource", observation)
            except FhirError as error:
                issues.extend(error.issues)
                continue
            results.append(result)
            comments.extend(f"{result.test}: {note['text']}" for note in _notes(observation))
        person = self._patient(f"Bundle.entry[{patient_index}].resource", patient, issues)
        pin = _receipt_pin(where, report, issues)
        if issues or person is None:
            raise FhirError(issues)
        if report.get("conclusion"):
            comments.insert(0, str(report["conclusion"]))
        return IngestLisResult(
            correlation_id=f"fhir-{message_id}"[:100],
            created_at=utcnow(),
            message_id=message_id,
            lab_id=lab_id,
            accession=str(accession)[:100],
            patient=person,
            sample_date=date.fromisoformat(str(when)[:10]),
            results=results,
            comments="\n".join(comments),
            receipt_pin=pin,
        )

    def _patient(self, where: str, patient: dict[str, Any], issues: list[Issue]) -> Patient | None:
        identifiers = patient.get("identifier") or []
        identifier = next((i["value"] for i in identifiers if i.get("value")), patient.get("id"))
        if not identifier:
            issues.append(Issue(f"{where}.identifier", "the patient has no identifier", "required"))
        names = patient.get("name") or [{}]
        name = names[0].get("text") or " ".join(
            [*names[0].get("given", []), names[0].get("family", "")]
        )
        if not name.strip():
            issues.append(Issue(f"{where}.name", "the patient has no name", "required"))
        if not patient.get("birthDate") or len(str(patient["birthDate"])) != 10:
            text = "birthDate (a full date) is needed for the portal's check"
            issues.append(Issue(f"{where}.birthDate", text, "required"))
        phones = [t for t in patient.get("telecom") or [] if t.get("system") in ("phone", "sms")]
        phones.sort(key=lambda telecom: telecom.get("use") != "mobile")
        phone = None
        for telecom in phones:
            try:
                phone = normalise_phone(str(telecom.get("value", "")), self._region)
                break
            except PhoneError:
                continue
        if phone is None:
            text = "no mobile number in telecom (needed to text the patient)"
            issues.append(Issue(f"{where}.telecom", text, "required"))
        if issues:
            return None
        return Patient(
            patient_id=str(identifier)[:200],
            name=name.strip()[:200],
            date_of_birth=date.fromisoformat(patient["birthDate"]),
            sex=SEX.get(str(patient.get("gender")), "U"),  # type: ignore[arg-type]
            phone=str(phone),
            language=_language(patient),
        )


def _language(patient: dict[str, Any]) -> str:
    """Patient.communication's language (BCP-47 code), the one marked preferred first."""
    spoken = sorted(
        patient.get("communication") or [], key=lambda c: c.get("preferred") is not True
    )
    for communication in spoken:
        for coding in (communication.get("language") or {}).get("coding") or []:
            if code := str(coding.get("code") or "").strip():
                return code[:35]
    return ""


def _receipt_pin(where: str, report: dict[str, Any], issues: list[Issue]) -> str | None:
    """The collection receipt's PIN: DiagnosticReport.extension `RECEIPT_PIN` (valueString,
    4-8 digits); None when absent. The issue never repeats the value."""
    for n, extension in enumerate(report.get("extension") or []):
        if isinstance(extension, dict) and extension.get("url") == RECEIPT_PIN:
            try:
                return second_check.normalise_pin(extension.get("valueString"))
            except second_check.PinError as error:
                issues.append(Issue(f"{where}.extension[{n}].valueString", str(error), "value"))
    return None


def _notes(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [note for note in resource.get("note") or [] if note.get("text")]


def _result(where: str, observation: dict[str, Any]) -> LabResult:
    test = _text(observation.get("code"))
    issues = []
    if not test:
        issues.append(Issue(f"{where}.code", "the observation's code has no text", "required"))
    unit, value = "", ""
    if "valueQuantity" in observation:
        quantity = observation["valueQuantity"]
        comparator = quantity.get("comparator", "")
        value = f"{comparator} {quantity.get('value', '')}".strip()
        unit = str(quantity.get("unit") or quantity.get("code") or "")
    elif "valueString" in observation:
        value = str(observation["valueString"]).strip()
    elif "valueCodeableConcept" in observation:
        value = _text(observation["valueCodeableConcept"])
    elif "valueInteger" in observation:
        value = str(observation["valueInteger"])
    if not value:
        text = "no valueQuantity, valueString or valueCodeableConcept"
        issues.append(Issue(f"{where}.value[x]", text, "required"))
    if observation.get("status") not in REPORTED:
        text = f"status '{observation.get('status')}' is not {', '.join(REPORTED)}"
        issues.append(Issue(f"{where}.status", text, "value"))
    codes = [
        coding.get("code", "")
        for concept in observation.get("interpretation") or []
        for coding in concept.get("coding") or []
    ]
    raw_flag = codes[0] if codes else ""
    flag = normalise_flag(raw_flag)
    if flag is None:
        text = f"interpretation '{raw_flag[:20]}' is not {ACCEPTED}"
        issues.append(Issue(f"{where}.interpretation", text, "value"))
    if issues or flag is None:
        raise FhirError(issues)
    return LabResult(
        test=test[:200],
        value=value[:200],
        unit=unit,
        reference_range=_range((observation.get("referenceRange") or [{}])[0]),
        flag=flag,
    )


def _range(reference: dict[str, Any]) -> str:
    if reference.get("text"):
        return str(reference["text"])
    low = (reference.get("low") or {}).get("value")
    high = (reference.get("high") or {}).get("value")
    if low is not None and high is not None:
        return f"{low}-{high}"
    if low is not None:
        return f">= {low}"
    return f"<= {high}" if high is not None else ""


def operation_outcome(issues: list[Issue], severity: str = "error") -> dict[str, Any]:
    """The OperationOutcome a FHIR client reads: one issue per problem, with where."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": severity,
                "code": issue.code,
                "diagnostics": issue.text,
                "expression": [issue.expression],
            }
            for issue in issues
        ],
    }
