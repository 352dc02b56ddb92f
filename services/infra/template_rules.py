"""The owner of the `template_rules` collection: which template a report uses, chosen by
its tests (a result's test or panel) and the patient's language. The first rule that
matches wins; a report no rule matches uses `default` (its active version)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from services.infra.database import Database

RULES_ID = "rules"
MAX_RULES = 100


class TemplateRule(TypedDict):
    test: str  # a result's test or panel name, any case; "" matches every report
    language: str  # the patient's language (`fr`, `fr-CA` matches `fr`); "" matches all
    template: str


def _language_matches(wanted: str, language: str) -> bool:
    wanted, language = wanted.lower(), language.lower()
    return not wanted or language == wanted or language.startswith(f"{wanted}-")


def choose_template(rules: list[TemplateRule], report: Mapping[str, Any]) -> str | None:
    """The template of the first rule `report` matches; None when none does."""
    tests: set[str] = set()
    for result in report.get("results") or []:
        for key in ("test", "panel"):
            if value := str(result.get(key) or "").strip().lower():
                tests.add(value)
    patient = report.get("patient") or {}
    language = str(patient.get("language") or "") if isinstance(patient, Mapping) else ""
    for rule in rules:
        if rule["test"] and rule["test"].strip().lower() not in tests:
            continue
        if _language_matches(rule["language"].strip(), language.strip()):
            return rule["template"]
    return None


class TemplateRuleStore:
    def __init__(self, db: Database) -> None:
        self._collection = db.template_rules

    async def get(self) -> list[TemplateRule]:
        found = await self._collection.find_one({"_id": RULES_ID})
        return [TemplateRule(**r) for r in found["rules"]] if found else []  # type: ignore[typeddict-item]

    async def put(self, rules: list[TemplateRule], *, by: str) -> None:
        await self._collection.replace_one(
            {"_id": RULES_ID}, {"_id": RULES_ID, "rules": rules[:MAX_RULES], "by": by}, upsert=True
        )
