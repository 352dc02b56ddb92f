"""FHIR R4 Bundles (the sample files in tests/data/fhir) as the reports they become, and the
OperationOutcome issues that say what is wrong, and where, with the ones that cannot be used."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from contracts.v1 import Flag
from services.infra import fhir_bundle

DATA = Path(__file__).parents[1] / "data" / "fhir"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return loaded


def issues_of(bundle: Any) -> list[fhir_bundle.Issue]:
    with pytest.raises(fhir_bundle.FhirError) as caught:
        fhir_bundle.to_results(bundle, "demo-lab", "GB")
    return caught.value.issues


def test_a_collection_bundle_becomes_one_report_with_every_kind_of_value() -> None:
    (result,) = fhir_bundle.to_results(sample("bundle_collection.json"), "demo-lab", "GB")
    assert (result.message_id, result.accession) == ("fhir-bundle-0001", "ACC-FHIR-0001")
    patient = result.patient
    assert (patient.patient_id, patient.name, patient.sex) == ("MRN-4004", "Zoë Østergaard", "F")
    assert patient.phone == "+447911123458"  # the mobile, not the home landline
    assert result.sample_date.isoformat() == "2026-02-26"
    values = [(r.test, r.value, r.unit, r.reference_range, r.flag) for r in result.results]
    assert values == [
        ("Cholesterol", "6.2", "mmol/L", "0-5.0", Flag.HIGH),
        ("C-reactive protein", "< 0.3", "mg/L", "< 5 mg/L", Flag.NORMAL),
        ("Hepatitis B surface antigen", "Negative", "", "", Flag.NEGATIVE),
    ]
    assert result.comments == (
        "Mildly raised cholesterol.\nC-reactive protein: Below the limit of detection"
    )


def test_a_message_bundle_with_urn_references_maps_its_corrected_report() -> None:
    (result,) = fhir_bundle.to_results(sample("bundle_message.json"), "demo-lab", "GB")
    assert (result.message_id, result.accession) == ("MSG-FHIR-77", "ACC-FHIR-0002")
    assert result.patient.phone == "+447911123459"
    assert result.results[0].reference_range == "3.9-5.5 mmol/L"  # the text wins
    assert result.sample_date.isoformat() == "2026-02-25"


def test_every_problem_of_a_broken_bundle_is_an_issue_naming_where() -> None:
    issues = issues_of(sample("bundle_broken.json"))
    assert {(i.expression, i.code) for i in issues} == {
        ("Bundle.entry[2].resource.interpretation", "value"),
        ("Bundle.entry[0].resource.telecom", "required"),
    }
    outcome = fhir_bundle.operation_outcome(issues)
    assert outcome["resourceType"] == "OperationOutcome"
    assert all(i["severity"] == "error" and i["diagnostics"] for i in outcome["issue"])


def test_an_invalid_resource_is_refused_by_the_fhir_model_with_its_path() -> None:
    bundle = sample("bundle_collection.json")
    bundle["entry"][2]["resource"]["valueQuantity"]["value"] = "six"
    (issue,) = issues_of(bundle)
    assert issue.expression == "Bundle.entry[2].resource.valueQuantity.value"


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        (lambda b: b.update(type="searchset"), "Bundle.type"),
        (lambda b: b["entry"].pop(1), "Bundle.entry"),
        (lambda b: b["entry"][1]["resource"].update(status="preliminary"), "status"),
        (
            lambda b: b["entry"][1]["resource"]["result"].append({"reference": "Observation/x"}),
            "result[3]",
        ),
        (lambda b: b["entry"][0]["resource"].pop("birthDate"), "birthDate"),
        (lambda b: b["entry"][3]["resource"].pop("valueQuantity"), "value[x]"),
    ],
)
def test_unusable_bundles_are_refused_naming_the_element(change: Any, expression: str) -> None:
    bundle = copy.deepcopy(sample("bundle_collection.json"))
    change(bundle)
    assert any(issue.expression.endswith(expression) for issue in issues_of(bundle))


def test_something_that_is_not_a_bundle_is_refused() -> None:
    assert issues_of({"resourceType": "Patient"})[0].expression == "Bundle"
    assert issues_of([1, 2])[0].expression == "Bundle"


def test_a_bundle_without_id_is_known_again_by_its_content() -> None:
    bundle = sample("bundle_collection.json")
    del bundle["id"]
    assert fhir_bundle.bundle_id(bundle) == fhir_bundle.bundle_id(copy.deepcopy(bundle))
    assert fhir_bundle.bundle_id(bundle).startswith("sha256-")
