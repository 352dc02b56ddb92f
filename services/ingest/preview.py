"""A batch's preview (pure): what reading it made, as staff see it before they confirm:
the reports it would make (patient masked: uploaders see batches, not patient data), every
rejected cell with its row, column and reason, the rows skipped, the columns no field is read
from, and, when no profile was chosen, the stored profile whose column names match the sheet.
Recorded on the batch by ingest; nothing is stored as a report until staff confirm."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from services.infra.sheet_profiles import SheetProfile, suggest
from services.ingest import layout, logic
from services.ingest.sheet_reader import RawSheet

# A preview is a summary, not a copy of the sheet: past these, counts only.
MOST_REPORTS = 500
MOST_PROBLEMS = 1000


def mask(value: str, keep_end: int = 0) -> str:
    """The first character (and the last `keep_end`) of each word; the rest as '*'."""
    words = []
    for word in value.split():
        if len(word) <= 1 + keep_end:
            words.append(word[0] + "*" * (len(word) - 1))
            continue
        end = word[len(word) - keep_end :] if keep_end else ""
        words.append(word[0] + "*" * (len(word) - 1 - keep_end) + end)
    return " ".join(words)


def column_of(reason: str) -> str:
    """The column a row error is about: its reason starts with the column's label."""
    labels = sorted(logic.LABELS.values(), key=len, reverse=True)
    return next((label for label in labels if reason.startswith(label)), "")


def header_cells(sheets: Iterable[RawSheet]) -> list[object]:
    """The cells a header row may be among: what profiles' column names are matched with."""
    return [
        cell
        for sheet in sheets
        for row in sheet.rows[: layout.HEADER_SEARCH_ROWS]
        for cell in row
        if isinstance(cell, str)
    ]


def suggestion(
    chosen: SheetProfile | None, stored: Sequence[SheetProfile], cells: Iterable[object]
) -> str | None:
    """The stored profile that matches the sheet's headers, when none was chosen."""
    if chosen is not None:
        return None
    found = suggest(stored, cells)
    return found.name if found else None


def of_outcome(
    table: layout.Table, outcome: logic.SheetOutcome, profile: SheetProfile | None
) -> dict[str, Any]:
    """The preview of a sheet that could be read."""
    reports = [
        {
            "patient_id": mask(d.patient.patient_id, keep_end=2),
            "name": mask(d.patient.name),
            "sample_date": d.sample_date.isoformat(),
            "rows": d.rows,
            "results": len(d.results),
            "incomplete": bool(d.rejected),
        }
        for d in outcome.drafts
    ]
    rejected = [
        {"row": r.row, "column": column_of(r.reason), "reason": r.reason} for r in outcome.rejected
    ]
    return {
        "profile": profile.name if profile else None,
        "error": None,
        "rows_total": outcome.rows_total,
        "rows_accepted": outcome.rows_accepted,
        "reports_total": len(reports),
        "reports": reports[:MOST_REPORTS],
        "rejected_total": len(rejected),
        "rejected": rejected[:MOST_PROBLEMS],
        "skipped": [{"row": s.row, "reason": s.reason} for s in table.skipped[:MOST_PROBLEMS]],
        "unknown_columns": list(table.unknown),
        "layout": table.layout,
    }


def of_error(reason: str, profile: SheetProfile | None) -> dict[str, Any]:
    """The preview of a sheet that cannot be read at all: why, and nothing to confirm."""
    return {
        "profile": profile.name if profile else None,
        "error": reason,
        "rows_total": 0,
        "rows_accepted": 0,
        "reports_total": 0,
        "reports": [],
        "rejected_total": 0,
        "rejected": [],
        "skipped": [],
        "unknown_columns": [],
        "layout": None,
    }
