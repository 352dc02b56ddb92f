"""Release rules: which results go out at once, which wait N hours, which wait for a person.

A lab keeps one list of rules in MongoDB (`release_rules`, one document per lab, written only
here). Each result of a report is matched against the rules; the strictest action wins:
review (a person releases it) over hold (sent after N hours) over send. A result no rule
matches is sent at once, except a critical value (HH, LL), which always waits for a person:
"phone the patient first". The decision is pure; the store is the only I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.v1 import Flag, utcnow
from services.infra.database import Database

CRITICAL_FLAGS = frozenset({Flag.CRITICAL_HIGH, Flag.CRITICAL_LOW})
MAX_HOLD_HOURS = 24 * 30


class ReleaseAction(StrEnum):
    SEND = "send"  # at once
    HOLD = "hold"  # for `hours`, then sent by the scheduler
    REVIEW = "review"  # until a person releases it


_STRICTNESS = {ReleaseAction.SEND: 0, ReleaseAction.HOLD: 1, ReleaseAction.REVIEW: 2}


class ReleaseRule(BaseModel):
    """One rule: results of `test` (name or code, any case; empty: every test) with one of
    `flags` (empty: any flag) get `action`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    test: str = Field("", max_length=200, description="Test name or code; empty for any test.")
    flags: list[Flag] = Field(default_factory=list, description="Any of these flags; empty: any.")
    action: ReleaseAction
    hours: int = Field(0, ge=0, le=MAX_HOLD_HOURS, description="How long `hold` waits.")
    critical: bool = Field(False, description="Matching results are critical values.")
    note: str = Field("", max_length=300, description="Shown with the hold, e.g. why it waits.")

    @model_validator(mode="after")
    def _hours_only_for_holds(self) -> ReleaseRule:
        if self.action is ReleaseAction.HOLD and self.hours < 1:
            raise ValueError("a hold needs hours of at least 1")
        if self.action is not ReleaseAction.HOLD and self.hours:
            raise ValueError("only a hold has hours")
        return self

    def matches(self, result: Mapping[str, Any]) -> bool:
        wanted = self.test.strip().lower()
        names = {str(result.get(key) or "").strip().lower() for key in ("test", "code")}
        if wanted and wanted not in names:
            return False
        return not self.flags or result.get("flag", "") in self.flags

    def describe(self) -> str:
        test = self.test or "any test"
        flags = "/".join(self.flags) if self.flags else "any flag"
        return f"{test}, {flags}"


class ReleaseRules(BaseModel):
    """A lab's rules, in the order they were written (the order does not change the outcome)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[ReleaseRule] = Field(default_factory=list, max_length=500)


@dataclass(frozen=True)
class ReleaseDecision:
    action: ReleaseAction
    hours: int = 0
    reason: str = ""  # for staff: which result and rule made it wait
    rule: int | None = None  # index of the deciding rule; None when a default decided


def decide(results: Iterable[Mapping[str, Any]], rules: ReleaseRules) -> ReleaseDecision:
    """What to do with a report of these results: the strictest of each result's decision."""
    decision = ReleaseDecision(ReleaseAction.SEND)
    for result in results:
        candidate = _decide_one(result, rules)
        if _stricter(candidate, decision):
            decision = candidate
    return decision


def _stricter(candidate: ReleaseDecision, than: ReleaseDecision) -> bool:
    """Review beats hold beats send; of two holds, the longer wins."""
    rank, other = _STRICTNESS[candidate.action], _STRICTNESS[than.action]
    return rank > other or (rank == other and candidate.hours > than.hours)


def _decide_one(result: Mapping[str, Any], rules: ReleaseRules) -> ReleaseDecision:
    what = f"{result.get('test', '')} {result.get('value', '')}".strip()
    flag = str(result.get("flag") or "")
    if flag:
        what += f" ({flag})"
    matched = [(index, rule) for index, rule in enumerate(rules.rules) if rule.matches(result)]
    critical = flag in CRITICAL_FLAGS or any(rule.critical for _, rule in matched)
    best: ReleaseDecision | None = None
    for index, rule in matched:
        action = ReleaseAction.REVIEW if rule.critical else rule.action
        hours = 0 if rule.critical else rule.hours
        note = rule.note or ("critical value" if rule.critical else f"rule: {rule.describe()}")
        candidate = ReleaseDecision(action, hours, f"{what}: {note}", index)
        if best is None or _stricter(candidate, best):
            best = candidate
    # A critical value waits for a person, unless a rule names its flag and says otherwise.
    names_the_flag = any(rule.flags for _, rule in matched)
    if critical and not names_the_flag and (best is None or best.action != ReleaseAction.REVIEW):
        return ReleaseDecision(
            ReleaseAction.REVIEW, 0, f"{what}: critical value, phone the patient first"
        )
    return best or ReleaseDecision(ReleaseAction.SEND)


class ReleaseRuleStore:
    """The owner of `release_rules`: one document per lab."""

    def __init__(self, db: Database) -> None:
        self._collection = db.release_rules

    async def get(self, lab_id: str) -> ReleaseRules:
        found = await self._collection.find_one({"_id": lab_id})
        return ReleaseRules.model_validate({"rules": found["rules"]}) if found else ReleaseRules()

    async def put(self, lab_id: str, rules: ReleaseRules, updated_by: str) -> datetime:
        now = utcnow()
        await self._collection.update_one(
            {"_id": lab_id},
            {
                "$set": {
                    "rules": rules.model_dump(mode="json")["rules"],
                    "updated_by": updated_by,
                    "updated_at": now,
                }
            },
            upsert=True,
        )
        return now
