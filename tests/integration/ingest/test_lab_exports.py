"""Sheets as real lab systems export them, read through the intake code (the reader runs in
its limited subprocess) and grouped into reports."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import date, datetime
from xml.sax.saxutils import escape

import pytest
from openpyxl import Workbook

from contracts.v1 import Flag
from devtools.demo import HEADER, demo_rows
from services.ingest import adapters, logic
from services.ingest.errors import SheetError

TODAY = date(2026, 11, 25)
SAMPLED = date(2026, 11, 20)


def workbook(*sheets: tuple[str, list[list[object]]], merges: tuple[str, ...] = ()) -> bytes:
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
        for merge in merges if title == sheets[-1][0] else ():
            sheet.merge_cells(merge)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def intake(data: bytes, filename: str = "export.xlsx", **options: object) -> logic.SheetOutcome:
    table = adapters.read_sheet(data, filename)
    return logic.group_rows(
        table.header,
        table.rows,
        "GB",
        TODAY,
        row_numbers=table.row_numbers,
        day_first=options.get("day_first"),  # type: ignore[arg-type]
    )


def test_a_title_block_a_merged_banner_and_data_on_the_second_worksheet_are_read() -> None:
    rows = demo_rows(2, sample_date=SAMPLED)
    data = workbook(
        ("Cover", [["Printed by LabSys 9.2"]]),
        ("Results", [["St Elsewhere Laboratory: results export"], [], list(HEADER), *rows]),
        merges=("A1:K1",),
    )
    table = adapters.read_sheet(data, "export.xlsx")
    assert (table.sheet, table.row_numbers[0]) == ("Results", 4)
    outcome = intake(data)
    assert outcome.rejected == []
    assert [len(d.results) for d in outcome.drafts] == [8, 8]


def test_footer_and_totals_rows_are_skipped_and_counted_not_rejected() -> None:
    rows = demo_rows(1, sample_date=SAMPLED)
    data = workbook(("Results", [list(HEADER), *rows, [], ["Total: 8 results"], ["End of report"]]))
    table = adapters.read_sheet(data, "export.xlsx")
    assert [(s.row, s.reason) for s in table.skipped] == [  # trailing blanks go unmentioned
        (11, "footer row ('Total: 8 results')"),
        (12, "footer row ('End of report')"),
    ]
    assert intake(data).rejected == []


def test_patient_cells_merged_down_a_patients_rows_fill_every_row() -> None:
    rows = demo_rows(1, sample_date=SAMPLED)
    for row in rows[1:]:
        row[:6] = [None] * 6
    data = workbook(
        ("Results", [list(HEADER), *rows]),
        merges=("A2:A9", "B2:B9", "C2:C9", "D2:D9", "E2:E9", "F2:F9"),
    )
    outcome = intake(data)
    assert outcome.rejected == []
    [draft] = outcome.drafts
    assert len(draft.results) == 8 and draft.rows == list(range(2, 10))


def test_every_hl7_flag_and_common_spellings_are_kept_with_critical_apart_from_high() -> None:
    spelled = ["A", "AA", "POS", "NEG", "Positive", "Reactive", "LL", "HH"]
    rows = [r for r in demo_rows(1, sample_date=SAMPLED)]
    for row, flag in zip(rows, spelled, strict=True):
        row[10] = flag
    outcome = intake(workbook(("Results", [list(HEADER), *rows])))
    assert outcome.rejected == []
    assert [r.flag for r in outcome.drafts[0].results] == [
        Flag.ABNORMAL,
        Flag.VERY_ABNORMAL,
        Flag.POSITIVE,
        Flag.NEGATIVE,
        Flag.ABNORMAL,
        Flag.ABNORMAL,
        Flag.CRITICAL_LOW,
        Flag.CRITICAL_HIGH,
    ]


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("03-Mar-1980", date(1980, 3, 3)),
        ("3 mars 1980", date(1980, 3, 3)),
        ("03.03.1980", date(1980, 3, 3)),
        ("1980-03-03", date(1980, 3, 3)),
        (29283, date(1980, 3, 3)),  # an Excel serial number left unformatted
        ("March 3, 1980", date(1980, 3, 3)),
    ],
)
def test_dates_as_lab_systems_write_them_are_read(written: object, meant: date) -> None:
    rows = demo_rows(1, sample_date=SAMPLED)[:1]
    rows[0][2] = written
    outcome = intake(workbook(("Results", [list(HEADER), *rows])))
    assert outcome.rejected == []
    assert outcome.drafts[0].patient.date_of_birth == meant


def test_an_ambiguous_date_is_a_row_error_unless_the_profile_gives_the_order() -> None:
    rows = demo_rows(1, sample_date=SAMPLED)[:1]
    rows[0][2] = "03/04/1980"
    data = workbook(("Results", [list(HEADER), *rows]))
    [rejected] = intake(data).rejected
    assert rejected.row == 2 and "Date of birth '03/04/1980' is ambiguous" in rejected.reason
    assert intake(data, day_first=True).drafts[0].patient.date_of_birth == date(1980, 4, 3)
    assert intake(data, day_first=False).drafts[0].patient.date_of_birth == date(1980, 3, 4)


@pytest.mark.parametrize(
    ("birth", "reason"),
    [(date(2027, 1, 1), "is in the future"), ("1890-01-01", "more than 130 years ago")],
)
def test_implausible_birth_dates_are_row_errors(birth: object, reason: str) -> None:
    rows = demo_rows(1, sample_date=SAMPLED)[:1]
    rows[0][2] = birth
    [rejected] = intake(workbook(("Results", [list(HEADER), *rows]))).rejected
    assert reason in rejected.reason


def test_a_semicolon_csv_in_windows_encoding_is_read() -> None:
    lines = [";".join(HEADER)]
    lines.append("P1;Zoë Müller;03/13/1980;F;07400 123456;2026-11-20;Sodium;140;mmol/L;135-145;")
    outcome = intake("\n".join(lines).encode("cp1252"), "export.csv")
    assert outcome.rejected == []
    assert outcome.drafts[0].patient.name == "Zoë Müller"


def test_the_wide_layout_with_a_units_row_becomes_one_result_per_test() -> None:
    header: list[object] = [
        "MRN",
        "Patient name",
        "DOB",
        "Sex",
        "Mobile",
        "Collected",
        "Sodium",
        "CRP (mg/L)",
    ]
    units: list[object] = ["Units", None, None, None, None, None, "mmol/L", None]
    patient = ["P7", "Ada Okafor", datetime(1980, 3, 3), "F", "07400 123456", SAMPLED]
    data = workbook(("Results", [header, units, [*patient, 140, "< 5"], ["End of report"]]))
    outcome = intake(data)
    assert outcome.rejected == []
    [draft] = outcome.drafts
    assert [(r.test, r.value, r.unit) for r in draft.results] == [
        ("Sodium", "140", "mmol/L"),
        ("CRP", "< 5", "mg/L"),
    ]
    assert draft.rows == [3]


def ods(rows: list[list[str]]) -> bytes:
    """A minimal OpenDocument spreadsheet, as LibreOffice would save it."""
    body = "".join(
        "<table:table-row>"
        + "".join(
            f'<table:table-cell office:value-type="string"><text:p>{escape(c)}</text:p>'
            "</table:table-cell>"
            for c in row
        )
        + "</table:table-row>"
        for row in rows
    )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f'<office:body><office:spreadsheet><table:table table:name="Results">{body}'
        "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2"><manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", manifest)
        archive.writestr("content.xml", content)
    return out.getvalue()


def test_an_opendocument_spreadsheet_is_read() -> None:
    row = ["P1", "Ada Okafor", "1980-03-03", "F", "07400 123456", "2026-11-20", "Sodium", "140"]
    outcome = intake(ods([list(HEADER[:8]), row]), "export.ods")
    assert outcome.rejected == [] and len(outcome.drafts) == 1


def test_a_sheet_without_the_header_says_where_it_looked() -> None:
    data = workbook(("Summary", [["Patient ID", "Name"], ["P1", "Ada"]]))
    with pytest.raises(SheetError) as refused:
        adapters.read_sheet(data, "export.xlsx")
    message = str(refused.value)
    assert "no column for Date of birth, Phone, Sample date, Test, Value" in message
    assert "first 30 rows of worksheet(s) 'Summary'" in message
    assert "closest header is row 1 of 'Summary'" in message


def refused_quickly(data: bytes, filename: str = "export.xlsx") -> str:
    started = time.perf_counter()
    with pytest.raises(SheetError) as refused:
        adapters.read_sheet(data, filename)
    assert time.perf_counter() - started < 2
    return str(refused.value)


def test_a_zip_bomb_is_refused_before_it_is_unpacked() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"<" + b" " * 40_000_000 + b"/>")
    assert "refused as a possible zip bomb" in refused_quickly(out.getvalue())


def test_a_workbook_of_thousands_of_parts_is_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for n in range(600):
            archive.writestr(f"xl/media/image{n}.png", b"")
    assert "600 parts inside" in refused_quickly(out.getvalue())


def test_a_stray_note_far_right_of_the_data_is_named_and_refused_quickly() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(HEADER))
    for row in demo_rows(20, sample_date=SAMPLED):
        sheet.append(row)
    sheet["XFD5"] = "checked by JB"
    out = io.BytesIO()
    book.save(out)
    message = refused_quickly(out.getvalue())
    assert "cell XFD5 holds something far right of the data" in message


def test_a_workbook_declaring_a_dtd_is_refused_with_the_usual_message() -> None:
    data = workbook(("Results", [list(HEADER)]))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as archive:
        for entry in source.infolist():
            body = source.read(entry)
            if entry.filename == "xl/workbook.xml":
                body = b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + body
            archive.writestr(entry, body)
    assert "entity or DTD declarations" in refused_quickly(out.getvalue())
