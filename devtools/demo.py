"""Demo data: a results sheet in the default layout, for `make run`, the tests and bench/.

Names are invented; phone numbers are well-formed UK mobiles that only ever reach the
development outbox.
"""

from __future__ import annotations

import io
import random
from datetime import date, timedelta

from openpyxl import Workbook
from openpyxl.styles import Font

HEADER = (
    "Patient ID",
    "Name",
    "Date of birth",
    "Sex",
    "Phone",
    "Sample date",
    "Test",
    "Value",
    "Unit",
    "Reference range",
    "Flag",
)
FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elif", "Farah", "Gus", "Hana", "Ivo", "June", "Kofi")
LAST = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Reyes", "Byrne", "Haddad", "Kowal")
# test, unit, low, high, decimals
PANEL = (
    ("Haemoglobin", "g/L", 120, 160, 0),
    ("White cell count", "10^9/L", 4.0, 11.0, 1),
    ("Platelets", "10^9/L", 150, 400, 0),
    ("Sodium", "mmol/L", 135, 145, 0),
    ("Potassium", "mmol/L", 3.5, 5.3, 1),
    ("Creatinine", "µmol/L", 59, 104, 0),
    ("Glucose (fasting)", "mmol/L", 3.9, 5.5, 1),
)


def demo_rows(
    patients: int, seed: int = 7, sample_date: date | None = None, first_id: int = 10000
) -> list[list[object]]:
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    sampled = sample_date or date.today() - timedelta(days=1)
    rows: list[list[object]] = []
    for n in range(patients):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        birth = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 65))
        phone = f"07400 {100000 + first_id + n:06d}"
        sex = rng.choice("FM")
        patient = [f"P{first_id + n}", name, birth, sex, phone, sampled]
        for test, unit, low, high, decimals in PANEL:
            span = high - low
            value = round(rng.uniform(low - span * 0.3, high + span * 0.3), decimals)
            flag = "H" if value > high else "L" if value < low else ""
            rows.append([*patient, test, f"{value:.{decimals}f}", unit, f"{low}–{high}", flag])
        rows.append([*patient, "CRP", "< 5.0", "mg/L", "< 5.0", ""])
    return rows


def demo_sheet(
    patients: int, seed: int = 7, sample_date: date | None = None, first_id: int = 10000
) -> bytes:
    """An .xlsx workbook with `patients` patients, eight results each."""
    return sheet_of(demo_rows(patients, seed, sample_date, first_id))


def sheet_of(rows: list[list[object]]) -> bytes:
    """An .xlsx workbook of `rows` in the default layout, under its header."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Results"
    sheet.append(HEADER)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    for column in ("C", "F"):
        for cell in sheet[column][1:]:
            cell.number_format = "yyyy-mm-dd"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
