"""Finding audit entries and exporting them, pure: the filter the audit page, the admin API
(`GET /api/v1/audit`) and `resultflow audit list` share, and the CSV they export. No
database or web imports; `services.infra.audit` runs the queries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.infra.audit_chain import to_millisecond
from services.infra.documents import AuditOutcome

PAGE_SIZE = 50
CSV_COLUMNS = (
    "seq", "at", "actor", "role", "action", "object", "outcome", "client", "detail", "hash",
)  # fmt: skip
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Query parameter names: `from` and `to` are Python words.
PARAMETERS = {"date_from": "from", "date_to": "to"}


@dataclass(frozen=True)
class AuditFilter:
    """What the audit list filters on; empty means any."""

    actor: str = ""  # part of the actor, any case: "alice" finds "admin:alice"
    action: str = ""  # the start of the action: "report." finds every report action
    object: str = ""  # the report, batch or user acted on, exactly
    outcome: str = ""  # an AuditOutcome value
    date_from: str = ""  # YYYY-MM-DD, UTC, both days included
    date_to: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> AuditFilter:
        def get(name: str) -> str:
            return str(query.get(PARAMETERS.get(name, name), "")).strip()[:200]

        outcome = get("outcome")
        return cls(
            actor=get("actor"),
            action=get("action"),
            object=get("object"),
            outcome=outcome if outcome in set(AuditOutcome) else "",
            date_from=_iso_date(get("date_from")),
            date_to=_iso_date(get("date_to")),
        )

    def mongo(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.actor:
            query["actor"] = {"$regex": re.escape(self.actor), "$options": "i"}
        if self.action:
            query["action"] = {"$regex": "^" + re.escape(self.action)}
        if self.object:
            # Entries from before `object` existed name only their report.
            query["$or"] = [{"object": self.object}, {"report_id": self.object}]
        if self.outcome == AuditOutcome.SUCCESS:
            query["outcome"] = {"$in": [AuditOutcome.SUCCESS.value, None]}  # None: older ones
        elif self.outcome:
            query["outcome"] = self.outcome
        if self.date_from or self.date_to:
            query["at"] = {}
            if self.date_from:
                query["at"]["$gte"] = _day_start(self.date_from)
            if self.date_to:
                query["at"]["$lt"] = _day_start(self.date_to) + timedelta(days=1)
        return query

    def params(self) -> dict[str, str]:
        """The filters set, as query parameters (links that keep them, the CSV link)."""
        return {
            PARAMETERS.get(f.name, f.name): getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name)
        }


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat() if text else ""
    except ValueError:
        return ""


def _day_start(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(), tzinfo=UTC)


def entry_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry as the page, the API and the CLI show it, older entries' gaps filled."""
    at = entry.get("at")
    return {
        "seq": entry.get("seq"),
        "at": to_millisecond(at) if isinstance(at, datetime) else None,
        "actor": str(entry.get("actor") or ""),
        "role": str(entry.get("role") or ""),
        "action": str(entry.get("action") or ""),
        "object": str(entry.get("object") or entry.get("report_id") or ""),
        "outcome": str(entry.get("outcome") or AuditOutcome.SUCCESS.value),
        "client": str(entry.get("client") or ""),
        "detail": dict(entry.get("detail") or {}),
        "hash": str(entry.get("hash") or ""),
    }


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text: one starting like a formula gets a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_row(entry: Mapping[str, Any]) -> list[str]:
    view = entry_view(entry)
    at = view["at"]
    view["at"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z") if at else ""
    view["detail"] = json.dumps(view["detail"], sort_keys=True, default=str, ensure_ascii=False)
    return [csv_cell(view[column]) for column in CSV_COLUMNS]
