"""Corrections, pure: what it means when a report's source (a patient and sample in a sheet,
an accession from the LIS) arrives again.

The same content is nothing new. Different content is a correction: the next version, with
its differences from the one it replaces listed for staff. A report that is still waiting
because rows were rejected is completed rather than replaced: the corrected rows are merged
into the results it already has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum, auto
from typing import Any

from contracts.v1 import ReportStatus
from services.infra.documents import ChangeEntry, CorrectionEntry, ReportDocument, ResultFields

PATIENT_FIELDS = ("name", "date_of_birth", "sex", "phone", "language")


class Arrival(Enum):
    NEW = auto()  # the first version of this source
    SAME = auto()  # what the latest version already says: nothing to do
    OUTDATED = auto()  # older than what made the latest version (arrived late): not used
    CORRECTION = auto()  # a new version replaces the latest


def _results(results: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    keys = ("test", "value", "unit", "reference_range", "flag")
    return sorted(tuple(str(r.get(k) or "") for k in keys) for r in results)


def _same_patient(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """A version stored before reports had a language matches whatever language now."""
    if "language" not in a or "language" not in b:
        a, b = ({k: v for k, v in p.items() if k != "language"} for p in (a, b))
    return a == b


def same_content(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two versions say the same to the patient (result order does not matter)."""
    return (
        _same_patient(a.get("patient") or {}, b.get("patient") or {})
        and a.get("sample_date") == b.get("sample_date")
        and _results(a.get("results") or []) == _results(b.get("results") or [])
        and (a.get("comments") or "") == (b.get("comments") or "")
    )


def completed(waiting: Mapping[str, Any], corrected: Sequence[ResultFields]) -> list[ResultFields]:
    """A waiting report's results with the corrected rows merged in: a test given again
    replaces the old result, a new test is added."""
    merged = {str(r["test"]).lower(): r for r in waiting.get("results") or []}
    for result in corrected:
        merged[result["test"].lower()] = result
    return list(merged.values())


def _shown(result: Mapping[str, Any] | None) -> str:
    if result is None:
        return ""
    text = f"{result.get('value', '')} {result.get('unit', '')}".strip()
    return f"{text} ({result['flag']})" if result.get("flag") else text


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ChangeEntry]:
    """What a new version changes, for staff: [{what, before, after}] (patient data: shown
    on the report page and API, never logged)."""
    found: list[ChangeEntry] = []
    old_patient, new_patient = old.get("patient") or {}, new.get("patient") or {}
    for field in PATIENT_FIELDS:
        if old_patient.get(field) != new_patient.get(field):
            found.append(
                {
                    "what": f"patient {field.replace('_', ' ')}",
                    "before": str(old_patient.get(field) or ""),
                    "after": str(new_patient.get(field) or ""),
                }
            )
    before = {str(r["test"]).lower(): r for r in old.get("results") or []}
    after = {str(r["test"]).lower(): r for r in new.get("results") or []}
    for key in [*before, *(k for k in after if k not in before)]:
        was, now = before.get(key), after.get(key)
        if was is None or now is None or _results([was]) != _results([now]):
            name = str((now or was or {}).get("test", key))
            found.append({"what": name, "before": _shown(was), "after": _shown(now)})
    if (old.get("comments") or "") != (new.get("comments") or ""):
        found.append(
            {
                "what": "comments",
                "before": old.get("comments") or "",
                "after": new.get("comments") or "",
            }
        )
    return found


def arrival(latest: ReportDocument | None, draft: ReportDocument) -> tuple[Arrival, ReportDocument]:
    """What `draft` (a version-1 document) is, given the source's latest stored version, and
    the document to store when it is new or a correction."""
    if latest is None:
        return Arrival.NEW, draft
    made, latest_made = draft["source"].get("at"), latest["source"].get("at")
    if made is not None and latest_made is not None and made < latest_made:
        return Arrival.OUTDATED, latest
    if latest["status"] == ReportStatus.NEEDS_ATTENTION:
        draft = {**draft, "results": completed(latest, draft["results"])}
    if same_content(latest, draft):
        return Arrival.SAME, latest
    correction: ReportDocument = {
        **draft,
        "version": latest["version"] + 1,
        "previous_id": latest["_id"],
        "changes": changes(latest, draft),
    }
    return Arrival.CORRECTION, correction


def summary(changes_made: Sequence[Mapping[str, Any]]) -> str:
    """The changed things' names, for the batch page (no values)."""
    return ", ".join(dict.fromkeys(str(c["what"]) for c in changes_made)) or "nothing visible"


def same_source(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two reports came from the very same upload or LIS message (a redelivery)."""
    if a.get("kind") != b.get("kind"):
        return False
    if a.get("kind") == "sheet":
        return bool(a.get("batch_id")) and a.get("batch_id") == b.get("batch_id")
    return bool(a.get("message_id")) and a.get("message_id") == b.get("message_id")


def correction_entry(rows: Sequence[int], report: ReportDocument) -> CorrectionEntry:
    """How the batch page lists rows that corrected an earlier report."""
    shown = str(rows[0]) if len(rows) == 1 else f"{rows[0]}–{rows[-1]}"
    patient = report["patient"]["patient_id"]
    return {
        "row": shown,
        "reason": f"{patient}, sample {report['sample_date']}: version {report['version']} "
        f"replaces version {report['version'] - 1}; changed: {summary(report.get('changes', []))}",
    }
