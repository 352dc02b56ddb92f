"""The sheet reader as a warm, limited child process, and the checks that run on a sheet's
XML before that child sees it (real child processes, real limits, hostile files built here)."""

from __future__ import annotations

import io
import random
import re
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
import python_calamine
from openpyxl import Workbook

from devtools.demo import HEADER, demo_rows, demo_sheet
from services.ingest import adapters, logic, reader_pool, sheet_guard, sheet_reader
from services.ingest.errors import SheetError

TODAY = date(2026, 11, 25)
SAMPLED = date(2026, 11, 20)


@pytest.fixture(scope="module")
def big() -> bytes:
    return demo_sheet(1250, sample_date=SAMPLED)  # 10,000 rows


@pytest.fixture
def pool() -> Iterator[reader_pool.ReaderPool]:
    readers = reader_pool.ReaderPool(sheet_reader.MEMORY_LIMIT)
    yield readers
    readers.close()


def reports(data: bytes, filename: str = "export.xlsx") -> list[tuple[str, str, list[str]]]:
    """What a batch would make of a sheet: each report's patient, sample date and results."""
    table = adapters.read_sheet(data, filename)
    outcome = logic.group_rows(table.header, table.rows, "GB", TODAY, row_numbers=table.row_numbers)
    assert outcome.rejected == []
    return [
        (
            d.patient.patient_id,
            d.sample_date.isoformat(),
            [f"{r.test}={r.value} {r.unit} {r.flag.value}" for r in d.results],
        )
        for d in outcome.drafts
    ]


def with_sheet_xml(data: bytes, change: Callable[[bytes], bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as archive:
        for entry in source.infolist():
            body = source.read(entry)
            if entry.filename == "xl/worksheets/sheet1.xml":
                body = change(body)
            archive.writestr(entry, body, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def test_one_warm_reader_reads_sheet_after_sheet(pool: reader_pool.ReaderPool) -> None:
    data = demo_sheet(3, sample_date=SAMPLED)
    first, _ = sheet_reader.read_measured(data, "export.xlsx", pool)
    serving = pool.idle
    again, _ = sheet_reader.read_measured(data, "export.xlsx", pool)
    assert pool.idle == serving and len(serving) == 1
    assert [s.rows for s in again] == [s.rows for s in first]


def test_two_uploads_read_at_once_are_both_read_whole(pool: reader_pool.ReaderPool) -> None:
    sheets = [demo_sheet(n, sample_date=SAMPLED) for n in (3, 40)]

    def read(data: bytes) -> int:
        return len(sheet_reader.read_measured(data, "a.xlsx", pool)[0][0].rows)

    with ThreadPoolExecutor(2) as readers:
        assert list(readers.map(read, sheets)) == [25, 321]  # header + 8 results a patient


def test_a_sheet_too_big_for_the_readers_memory_is_refused_and_the_next_one_is_read(
    big: bytes,
) -> None:
    # The same limits as in service, only tighter: 30 MB of address space reads a small sheet
    # and not a 10,000-row one (which needs about 28 MB resident).
    small = reader_pool.ReaderPool(30 * 1024 * 1024)
    try:
        sheet_reader.read_measured(demo_sheet(2, sample_date=SAMPLED), "a.xlsx", small)
        with pytest.raises(SheetError) as refused:
            sheet_reader.read_measured(big, "big.xlsx", small)
        assert "'big.xlsx' needs more memory or time to read" in str(refused.value)
        sheets, _ = sheet_reader.read_measured(demo_sheet(2, sample_date=SAMPLED), "b.xlsx", small)
        assert len(sheets[0].rows) == 17  # header and 2 patients x 8 results
    finally:
        small.close()


def test_a_sheet_that_outlasts_the_time_limit_is_refused_and_its_reader_replaced(
    pool: reader_pool.ReaderPool, monkeypatch: pytest.MonkeyPatch, big: bytes
) -> None:
    small = demo_sheet(2, sample_date=SAMPLED)
    sheet_reader.read_measured(small, "a.xlsx", pool)
    stuck = pool.idle
    with monkeypatch.context() as limits:
        limits.setattr(sheet_reader, "WALL_SECONDS", 0.001)
        with pytest.raises(SheetError) as refused:
            sheet_reader.read_measured(big, "big.xlsx", pool)
    assert "'big.xlsx' took too long to read" in str(refused.value)
    sheets, _ = sheet_reader.read_measured(small, "a.xlsx", pool)
    assert len(sheets[0].rows) == 17 and pool.idle != stuck


def test_a_table_that_starts_right_of_column_a_keeps_its_sheet_columns_and_rows() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["C3"] = "Results"
    lines: list[list[object]] = [list(HEADER), *demo_rows(2, sample_date=SAMPLED)]
    for offset, row in enumerate(lines):
        for column, value in enumerate(row):
            sheet.cell(row=5 + offset, column=2 + column, value=value)
    out = io.BytesIO()
    book.save(out)
    data = out.getvalue()
    read = sheet_reader.read_workbook(data, "export.xlsx")
    bare = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    expected = bare.get_sheet_by_index(0).to_python(skip_empty_area=False)
    assert read[0].rows == [[c if c != "" else None for c in row] for row in expected]
    table = adapters.read_sheet(data, "export.xlsx")
    assert table.row_numbers[0] == 6 and table.rows[0][1] == "P10000"


def test_a_used_range_declared_beyond_any_worksheet_is_refused_before_reading() -> None:
    data = with_sheet_xml(
        demo_sheet(2, sample_date=SAMPLED),
        lambda xml: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD2000000"', xml),
    )
    started = time.perf_counter()
    with pytest.raises(SheetError) as refused:
        adapters.read_sheet(data, "export.xlsx")
    assert time.perf_counter() - started < 2
    assert str(refused.value).startswith(
        "'export.xlsx' (sheet1) declares a used range of A1:XFD2000000, larger than any "
        "worksheet can be"
    )


def test_formatting_to_the_last_column_and_row_is_cut_to_the_cells_holding_data() -> None:
    plain = demo_sheet(2, sample_date=SAMPLED)

    def formatted_everywhere(xml: bytes) -> bytes:
        xml = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD1048576"', xml)
        xml = xml.replace(b"</row>", b'<c r="XFD2" s="0"/></row>', 1)
        return xml.replace(
            b"</sheetData>", b'<row r="1048576"><c r="XFD1048576" s="0"/></row></sheetData>'
        )

    started = time.perf_counter()
    assert reports(with_sheet_xml(plain, formatted_everywhere)) == reports(plain)
    assert time.perf_counter() - started < 2


def huge_sheet(rows: int, last: bytes) -> bytes:
    """A workbook whose one worksheet XML is tens of MB of barely compressible cells."""
    noise = random.Random(7)
    body = [
        b'<row r="%d"><c r="A%d" t="inlineStr"><is><t>%s</t></is></c></row>'
        % (n, n, noise.randbytes(300).hex().encode())
        for n in range(1, rows + 1)
    ]
    xml = (
        b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats'
        b'.org/spreadsheetml/2006/main"><dimension ref="A1"/><sheetData>'
        + b"".join(body)
        + last
        + b"</sheetData></worksheet>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", xml)
    return out.getvalue()


def test_a_huge_sheet_xml_is_checked_piece_by_piece_in_little_memory() -> None:
    data = huge_sheet(45_000, b'<row r="60000"><c r="B60000"><v>1</v></c></row>')
    assert len(data) < sheet_guard.MAX_FILE_BYTES
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(SheetError) as refused:
            sheet_guard.check(data, "export.xlsx")
        took = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "has rows down to 60000" in str(refused.value)
    assert took < 2
    assert peak < 8 * 1024 * 1024  # the XML is ~28 MB; pieces of 1 MB are read


def test_rows_of_formatting_only_far_below_the_data_are_not_refused() -> None:
    data = huge_sheet(10, b'<row r="900000" s="1"/><row r="900001"><c r="A900001" s="1"/></row>')
    assert sheet_guard.check(data, "export.xlsx") == "zip"


def opendocument(rows: str) -> bytes:
    """An .ods whose one table is `rows` (table:table-row elements)."""
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Results">'
        f"{rows}</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", content)
    return out.getvalue()


TEXT_CELL = '<table:table-cell office:value-type="string"><text:p>{}</text:p></table:table-cell>'


@pytest.mark.parametrize(
    ("rows", "refusal"),
    [
        (
            "<table:table-row>"
            + TEXT_CELL.format("Patient ID")
            + '<table:table-cell table:number-columns-repeated="16000" '
            'office:value-type="float" office:value="1"/></table:table-row>',
            "'export.ods' (Results): row 1 holds something in column 16001 (WQK), far right",
        ),
        (
            '<table:table-row table:number-rows-repeated="1000000">'
            + TEXT_CELL.format("checked")
            + "</table:table-row>",
            "'export.ods' (Results) has rows down to 1000000; at most 50000 result rows",
        ),
        (
            '<table:table-row table:number-rows-repeated="60000"><table:table-cell '
            'table:number-columns-repeated="16000"><text:p>x</text:p></table:table-cell>'
            "</table:table-row>",
            "'export.ods' (Results): row 1 holds something in column 16000 (WQJ), far right",
        ),
    ],
)
def test_an_opendocument_table_repeating_a_value_beyond_the_limits_is_refused_before_reading(
    rows: str, refusal: str
) -> None:
    started = time.perf_counter()
    with pytest.raises(SheetError) as refused:
        adapters.read_sheet(opendocument(rows), "export.ods")
    assert time.perf_counter() - started < 2
    assert str(refused.value).startswith(refusal)


def test_an_opendocument_tables_empty_repeated_cells_are_cut() -> None:
    header = "".join(TEXT_CELL.format(h) for h in HEADER)
    patient = "".join(TEXT_CELL.format(c) for c in demo_rows(1, sample_date=SAMPLED)[0][:3])
    data = opendocument(
        f"<table:table-row>{header}</table:table-row>"
        f'<table:table-row>{patient}<table:table-cell table:number-columns-repeated="16381"/>'
        '</table:table-row><table:table-row table:number-rows-repeated="1048574">'
        '<table:table-cell table:number-columns-repeated="16384"/></table:table-row>'
    )
    assert sheet_guard.check(data, "export.ods") == "zip"


def test_a_huge_opendocument_table_is_checked_element_by_element_in_little_memory() -> None:
    noise = random.Random(7)
    rows = "".join(
        "<table:table-row>" + TEXT_CELL.format(noise.randbytes(200).hex()) + "</table:table-row>"
        for _ in range(45_000)
    )
    data = opendocument(
        rows
        + '<table:table-row table:number-rows-repeated="10000">'
        + TEXT_CELL.format("x")
        + "</table:table-row>"
    )
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(SheetError) as refused:
            sheet_guard.check(data, "export.ods")
        took = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "has rows down to 55000" in str(refused.value)
    assert took < 5
    assert peak < 8 * 1024 * 1024  # content.xml is ~23 MB
