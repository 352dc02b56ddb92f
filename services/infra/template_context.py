"""What a report template can show: every context field with its type and an example (the
table in docs/templates.md is generated from `FIELDS`), the fields every template must use,
and the sample data of trial renders and previews.

The render stage builds the real context (`services.render.logic.build_context`); a unit
test keeps it and `FIELDS` the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.flags import flag_words, is_abnormal


@dataclass(frozen=True)
class Field:
    path: str  # `patient.name`; `results[].test` is a field of each item of a list
    type: str
    example: str
    meaning: str


FIELDS: tuple[Field, ...] = (
    Field("lab.name", "text", "ResultFlow Demo Laboratory", "the lab's name"),
    Field("lab.address", "text", "1 Example Street, Exampletown", "the lab's address"),
    Field("lab.phone", "text", "+44 20 7946 0000", "the lab's phone number"),
    Field("reference", "text", "3F2A9C1B7D4E", "the report's short reference"),
    Field("patient.name", "text", "Ada Example", "the patient's full name"),
    Field("patient.patient_id", "text", "P-000123", "the lab's patient number"),
    Field("patient.date_of_birth", "text", "17 May 1980", "date of birth, for humans"),
    Field("patient.age", "text", "45 years", "age on the sample date (may be empty)"),
    Field("patient.sex", "text", "Female", "Female, Male or Not stated"),
    Field("sample_date", "text", "02 Mar 2026", "when the sample was taken"),
    Field("report_date", "text", "03 Mar 2026", "when the report was made"),
    Field("results", "list", "(one item per test)", "the results table: loop over it"),
    Field("results[].test", "text", "Haemoglobin", "test name"),
    Field("results[].value", "text", "< 5.0", "the result, as printed"),
    Field("results[].unit", "text", "g/L", "unit (may be empty)"),
    Field("results[].reference_range", "text", "120-160", "reference range (may be empty)"),
    Field("results[].flag", "text", "H", "H, L, HH, LL or empty"),
    Field("results[].flag_label", "text", "High", "the flag in words"),
    Field("results[].abnormal", "yes/no", "true", "whether the result is flagged"),
    Field("comments", "list of text", "Fasting sample.", "the lab's comments, one per line"),
    Field("verification_url", "text", "https://lab.example/v/3F2A9C1B7D4E", "where to check"),
    Field("verification_qr", "image", "(QR code)", "QR code of verification_url"),
)
PATHS = frozenset(field.path for field in FIELDS)
TOP_LEVEL = frozenset(path.split(".")[0].removesuffix("[]") for path in PATHS)
# Without these a report says nothing: every template must use them.
REQUIRED = ("patient.name", "results")
# Text fields a placeholder may be mapped to (not lists or images).
MAPPABLE = tuple(f.path for f in FIELDS if f.type == "text" and "[]" not in f.path)
VERIFICATION_PLACEHOLDER = "verification_qr"

FLAGS = ("", "H", "L", "HH", "LL", "A", "POS", "NEG")


def sample_context() -> dict[str, Any]:
    """Built-in sample data for trial renders and previews: long names, accents, 40 results
    (the table spans pages), every flag, a long comment. No real patient."""
    results = []
    for index in range(40):
        flag = FLAGS[index % len(FLAGS)]
        results.append(
            {
                "test": f"Échantillon de contrôle n° {index + 1} — Hämoglobin (glycated) test",
                "value": "< 5.0" if index % 7 == 0 else f"{100 + index * 3.5:.1f}",
                "unit": "mmol/mol",
                "reference_range": "20-42",
                "flag": flag,
                "flag_label": flag_words(flag),
                "abnormal": is_abnormal(flag),
            }
        )
    long_comment = (
        "Échantillon reçu hémolysé; les résultats de potassium doivent être interprétés avec "
        "prudence. Please repeat the test after 12 hours of fasting if the clinical picture "
        "suggests it; contact the laboratory for any question about this report. " * 3
    )
    return {
        "lab": {
            "name": "Laboratoire d'Analyses Médicales Saint-Étienne-du-Rouvray & Associés",
            "address": "12 rue de l'Hôpital, 76800 Saint-Étienne-du-Rouvray",
            "phone": "+33 2 35 00 00 00",
        },
        "reference": "SAMPLE000000",
        "patient": {
            "name": "María-José Ñúñez-Øster Wolfeschlegelsteinhausenbergerdorff de la Cruz",
            "patient_id": "P-0001234567",
            "date_of_birth": "29 Feb 1944",
            "age": "82 years",
            "sex": "Female",
        },
        "sample_date": "02 Mar 2026",
        "report_date": "03 Mar 2026",
        "results": results,
        "comments": [long_comment.strip(), "Second line of comment: ½ ≤ ≥ µ ° ±."],
        "verification_url": "https://lab.example/v/SAMPLE000000",
    }


def lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        value = value[part]
    return value


def apply_mapping(context: dict[str, Any], mapping: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The context with a lab's own placeholders added: each mapped to a field or a text."""
    extra: dict[str, Any] = {}
    for name, target in mapping.items():
        if "field" in target and target["field"] in MAPPABLE:
            extra[name] = str(lookup(context, target["field"]))
        else:
            extra[name] = str(target.get("text", ""))
    return {**context, **extra}


def own_placeholders(placeholders: list[str]) -> list[str]:
    """The lab's own placeholders (`{{ patient_name }}`): plain names that are no report
    field, each of which may be mapped to a field or a fixed text."""
    return [p for p in placeholders if p.isidentifier() and p not in TOP_LEVEL]


def mapping_from_form(form: Any, placeholders: list[str]) -> dict[str, dict[str, str]]:
    """A version's mapping from the form of its page: `map:<p>` is a field path, `text` (then
    `text:<p>` is the fixed text) or empty (not mapped)."""
    mapping: dict[str, dict[str, str]] = {}
    for name in own_placeholders(placeholders):
        choice = str(form.get(f"map:{name}", "")).strip()
        if choice in MAPPABLE:
            mapping[name] = {"field": choice}
        elif choice == "text":
            mapping[name] = {"text": str(form.get(f"text:{name}", ""))[:500]}
    return mapping


def fields_table() -> str:
    """The Markdown table of docs/templates.md."""
    rows = ["| field | type | example | meaning |", "|---|---|---|---|"]
    rows += [f"| `{f.path}` | {f.type} | {f.example} | {f.meaning} |" for f in FIELDS]
    return "\n".join(rows)
