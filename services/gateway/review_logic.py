"""Pure rules of the reviewers' pages: the release rules form's rows, to and from text.

No database or web imports here: everything is a function of its arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

RULE_FIELDS = ("test", "flags", "action", "hours", "critical", "note")


def rule_rows(rules: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Stored rules as the form's rows of text."""
    return [
        {
            "test": str(rule.get("test") or ""),
            "flags": ", ".join(rule.get("flags") or []),
            "action": str(rule.get("action") or ""),
            "hours": str(rule.get("hours") or ""),
            "critical": "on" if rule.get("critical") else "",
            "note": str(rule.get("note") or ""),
        }
        for rule in rules
    ]


def rule_rows_from_form(form: Mapping[str, str]) -> list[dict[str, str]]:
    """The form's rows (`test-0`, `action-0`, ...), as typed, blank rows left out."""
    indices = sorted(
        {int(m.group(1)) for key in form if (m := re.fullmatch(r"[a-z]+-(\d{1,3})", key))}
    )
    rows = [{name: form.get(f"{name}-{i}", "").strip() for name in RULE_FIELDS} for i in indices]
    return [row for row in rows if any(row[name] for name in ("test", "flags", "action", "note"))]


def rules_from_rows(rows: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """The rows as rule data for validation (`ReleaseRules`), which names what is wrong."""
    return [
        {
            "test": row["test"],
            "flags": [f for f in re.split(r"[\s,;/]+", row["flags"].upper()) if f],
            "action": row["action"],
            "hours": row["hours"] or 0,
            "critical": row["critical"] == "on",
            "note": row["note"],
        }
        for row in rows
    ]
