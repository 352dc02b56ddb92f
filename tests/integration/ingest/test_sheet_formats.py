"""Every format a lab may upload (.xlsx, .xlsm, .xls, .ods, CSV) reads to the same reports: the
.xlsx is built here and LibreOffice Calc (headless, its own profile) saves it in the others,
as a lab's own office suite would."""

from __future__ import annotations

import io
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from contracts.v1 import Patient
from devtools.demo import HEADER, demo_rows
from services.ingest import adapters, logic
from services.ingest.sheet_guard import OLE_MAGIC, ZIP_MAGIC

TODAY = date(2026, 11, 25)
SAMPLED = date(2026, 11, 20)

# LibreOffice's filter for each format (the .xlsm one keeps macros, here there are none)
FILTERS = {
    "xls": "xls:MS Excel 97",
    "ods": "ods:calc8",
    "xlsm": "xlsm:Calc MS Excel 2007 VBA XML",
    "csv": "csv:Text - txt - csv (StarCalc):44,34,76",
}


def lab_sheet() -> bytes:
    """Three patients' results under a title block, dates as real dates, a flag column."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Results"
    sheet.append(["Northfield Laboratory: results for release"])
    sheet.append([])
    sheet.append(list(HEADER))
    for row in demo_rows(3, sample_date=SAMPLED):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def saved_as(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The lab sheet as .xlsx and as LibreOffice saved it in each other format."""
    return save_in_every_format(tmp_path_factory.mktemp("formats"))


def save_in_every_format(folder: Path) -> dict[str, bytes]:
    """The lab sheet as .xlsx and as LibreOffice saved it in each other format."""
    source = folder / "results.xlsx"
    source.write_bytes(lab_sheet())
    profile = (folder / "profile").as_uri()
    files = {"xlsx": source.read_bytes()}
    for extension, target in FILTERS.items():
        out = folder / extension
        subprocess.run(
            [
                "soffice",
                f"-env:UserInstallation={profile}",
                "--headless",
                "--convert-to",
                target,
                "--outdir",
                str(out),
                str(source),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        saved = out / f"results.{extension}"
        # Without Calc, soffice says nothing and writes nothing: say what is missing.
        assert saved.exists(), "soffice wrote no file: install libreoffice-calc-nogui (setup.sh)"
        files[extension] = saved.read_bytes()
    return files


Report = tuple[Patient, date, list[int], list[dict[str, Any]]]


def reports(data: bytes, filename: str) -> tuple[int, list[Report]]:
    table = adapters.read_sheet(data, filename)
    outcome = logic.group_rows(table.header, table.rows, "GB", TODAY, row_numbers=table.row_numbers)
    assert outcome.rejected == []
    return outcome.rows_total, [
        (
            d.patient,
            d.sample_date,
            d.rows,
            [r.model_dump(mode="json") for r in d.results],
        )
        for d in outcome.drafts
    ]


def test_the_lab_sheet_reads_to_three_reports_of_eight_results() -> None:
    rows, drafts = reports(lab_sheet(), "results.xlsx")
    assert rows == 24 and len(drafts) == 3
    assert all(len(results) == 8 for _, _, _, results in drafts)
    assert drafts[0][2] == list(range(4, 12))  # sheet rows under the title block and header


@pytest.mark.parametrize("extension", ["xls", "ods", "xlsm", "csv"])
def test_a_sheet_saved_by_an_office_suite_in_another_format_reads_to_the_same_reports(
    saved_as: dict[str, bytes], extension: str
) -> None:
    data = saved_as[extension]
    if extension == "xls":
        assert data.startswith(OLE_MAGIC)  # a real BIFF8 workbook, not a renamed CSV
    elif extension != "csv":
        assert data.startswith(ZIP_MAGIC)
    assert reports(data, f"results.{extension}") == reports(saved_as["xlsx"], "results.xlsx")


def test_an_xls_file_that_is_really_text_is_read_as_the_csv_it_is(
    saved_as: dict[str, bytes],
) -> None:
    assert reports(saved_as["csv"], "results.xls") == reports(saved_as["xlsx"], "results.xlsx")
