"""Where the results are in a workbook as lab systems export it: the header row (any of the
first rows of any worksheet, under title blocks and banners), merged cells (their value on
every row they span), footer and blank rows (skipped and counted, never rejected), and the
wide layout (one row per patient, one column per test) turned into one row per result.
Pure: cells in, a `Table` out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.ingest.errors import SheetError
from services.ingest.logic import COLUMNS, LABELS, REQUIRED, normalise_header
from services.ingest.sheet_reader import RawSheet
from services.ingest.values import text

HEADER_SEARCH_ROWS = 30
PATIENT_FIELDS = (
    "patient_id",
    "name",
    "date_of_birth",
    "sex",
    "phone",
    "sample_date",
    "language",
    "pin",
)
WIDE_REQUIRED = ("patient_id", "name", "date_of_birth", "phone", "sample_date")
FOOTER = re.compile(
    r"^(\*+\s*)?(grand\s+)?(totals?|end of (report|file|data|list)|page \d+( of \d+)?|printed|"
    r"generated|records?|count|number of|summary|signed|signature|report end|confidential)\b",
    re.IGNORECASE,
)
UNIT_ROW = ("unit", "units")
RANGE_ROW = ("reference range", "ref range", "range", "normal range", "reference")
_UNIT_IN_HEADER = re.compile(r"^(?P<test>.+?)\s*[\(\[](?P<unit>[^\)\]]{1,20})[\)\]]$")


@dataclass
class Skipped:
    row: int
    reason: str


@dataclass
class Table:
    """Rows in the long layout (one result per row) under `header`, with their sheet rows."""

    sheet: str
    header: list[str]
    rows: list[list[Any]]
    row_numbers: list[int]
    layout: str = "long"
    skipped: list[Skipped] = field(default_factory=list)
    # Header cells no field is read from (long layout): shown to staff, never silently lost.
    unknown: list[str] = field(default_factory=list)


def fill_merged(sheet: RawSheet) -> None:
    """A merged cell's value on every cell it spans (exports merge a patient's cells down)."""
    for top, left, bottom, right in sheet.merged:
        if top >= len(sheet.rows) or left >= len(sheet.rows[top]):
            continue
        value = sheet.rows[top][left]
        for r in range(top, min(bottom, len(sheet.rows) - 1) + 1):
            row = sheet.rows[r]
            if len(row) <= right:
                row.extend([None] * (right + 1 - len(row)))
            for c in range(left, right + 1):
                row[c] = value


def header_fields(
    cells: list[Any], columns: Mapping[str, tuple[str, ...]] = COLUMNS
) -> dict[str, int]:
    positions: dict[str, int] = {}
    for index, cell in enumerate(cells):
        name = normalise_header(cell)
        for field_name, aliases in columns.items():
            if name in aliases and field_name not in positions:
                positions[field_name] = index
    return positions


def locate(
    sheets: list[RawSheet],
    filename: str,
    columns: Mapping[str, tuple[str, ...]] = COLUMNS,
    layout: str = "auto",
) -> Table:
    """The results table of a workbook; SheetError says where it looked when none is found.
    `columns` and `layout` ("auto", "long" or "wide") are the sheet profile's."""
    best: tuple[int, str, int, dict[str, int]] | None = None
    for sheet in sheets:
        for index, cells in enumerate(sheet.rows[:HEADER_SEARCH_ROWS]):
            found = header_fields(cells, columns)
            if layout != "wide" and all(f in found for f in REQUIRED):
                fill_merged(sheet)
                return long_table(sheet, index, found)
            wide = all(f in found for f in WIDE_REQUIRED)
            if wide and (layout == "wide" or (layout == "auto" and "test" not in found)):
                fill_merged(sheet)
                return wide_table(sheet, index, found, columns)
            if best is None or len(found) > best[0]:
                best = (len(found), sheet.name, index, found)
    names = ", ".join(f"'{s.name}'" for s in sheets) or "none"
    where = f"looked at the first {HEADER_SEARCH_ROWS} rows of worksheet(s) {names}"
    if best is None or best[0] == 0:
        raise SheetError(
            f"'{filename}': no header row found ({where}); expected a row with the column names "
            + ", ".join(LABELS.values())
        )
    _, sheet_name, index, found = best
    missing = [LABELS[f] for f in REQUIRED if f not in found]
    raise SheetError(
        f"'{filename}': the sheet has no column for {', '.join(missing)} ({where}; the closest "
        f"header is row {index + 1} of '{sheet_name}'); expected a header row with: "
        + ", ".join(LABELS.values())
    )


def _skip_reason(cells: list[Any]) -> str | None:
    filled: list[str] = []
    for cell in cells:
        if cell is not None and (value := text(cell)):
            filled.append(value)
            if len(filled) > 3:
                return None  # a data row (the common case: stop looking)
    if not filled:
        return "blank row"
    if FOOTER.match(filled[0]):
        return f"footer row ('{filled[0][:40]}')"
    return None


def long_table(sheet: RawSheet, header_index: int, found: dict[str, int]) -> Table:
    header = [text(c) for c in sheet.rows[header_index]]
    used = set(found.values())
    unknown = [h for i, h in enumerate(header) if h and i not in used]
    table = Table(sheet.name, header, [], [], unknown=unknown)
    for offset, cells in enumerate(sheet.rows[header_index + 1 :]):
        number = header_index + 2 + offset
        reason = _skip_reason(cells)
        if reason:
            table.skipped.append(Skipped(number, reason))
            continue
        table.rows.append(cells)
        table.row_numbers.append(number)
    _drop_trailing_blanks(table)
    return table


def wide_table(
    sheet: RawSheet,
    header_index: int,
    found: dict[str, int],
    columns: Mapping[str, tuple[str, ...]] = COLUMNS,
) -> Table:
    """One row per patient and sample, one column per test: a long row per filled test cell.
    A "Unit" or "Reference range" row right under the header (or "Glucose (mmol/L)" in the
    header itself) gives each test its unit and range."""
    cells = sheet.rows[header_index]
    known = set(found.values())
    aliases = {alias for names in columns.values() for alias in names}
    tests: dict[int, dict[str, str]] = {}
    for index, cell in enumerate(cells):
        name = text(cell)
        if index in known or not name or normalise_header(name) in aliases:
            continue
        match = _UNIT_IN_HEADER.match(name)
        tests[index] = (
            {"test": match["test"], "unit": match["unit"], "reference_range": ""}
            if match
            else {"test": name, "unit": "", "reference_range": ""}
        )
    if not tests:
        raise SheetError(
            f"worksheet '{sheet.name}' row {header_index + 1} has patient columns but no "
            "Test and Value columns and no test columns"
        )
    body = header_index + 1
    while body < len(sheet.rows):
        label = next((normalise_header(c) for c in sheet.rows[body] if text(c)), "")
        key = "unit" if label in UNIT_ROW else "reference_range" if label in RANGE_ROW else ""
        if not key:
            break
        row = sheet.rows[body]
        for index, test in tests.items():
            if index < len(row) and text(row[index]):
                test[key] = text(row[index])
        body += 1
    header = [LABELS[f] for f in (*PATIENT_FIELDS, "test", "value", "unit", "reference_range")]
    table = Table(sheet.name, header, [], [], layout="wide")
    for offset, row in enumerate(sheet.rows[body:]):
        number = body + 1 + offset
        reason = _skip_reason(row)
        if reason:
            table.skipped.append(Skipped(number, reason))
            continue
        patient = [
            row[found[f]] if f in found and found[f] < len(row) else None for f in PATIENT_FIELDS
        ]
        for index, test in tests.items():
            value = row[index] if index < len(row) else None
            if text(value):
                table.rows.append(
                    [*patient, test["test"], value, test["unit"], test["reference_range"]]
                )
                table.row_numbers.append(number)
    _drop_trailing_blanks(table)
    return table


def _drop_trailing_blanks(table: Table) -> None:
    """Empty rows after the last data row are the sheet's unused area, not worth a mention."""
    last = table.row_numbers[-1] if table.row_numbers else 0
    table.skipped = [s for s in table.skipped if s.row < last or s.reason != "blank row"]
