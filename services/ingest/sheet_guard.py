"""Checks on an uploaded sheet before any reader parses it: cheap, from the zip directory and
the sheet XML alone, so a hostile file (zip bomb, thousands of entries, a DTD, one stray cell
in column XFD that makes a reader build a 16,384-column grid, a used range declared beyond any
worksheet, an .ods cell repeated a million times) is refused in milliseconds with a message a
lab technician can act on. The XML is read piece by piece, never whole. Pure: bytes in,
`SheetError` out."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Iterator
from io import BytesIO
from typing import IO, cast
from xml.etree import ElementTree as ET  # content.xml only, DTDs refused before it is fed

from services.ingest.errors import SheetError

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ENTRIES = 500
MAX_UNCOMPRESSED = 150 * 1024 * 1024  # all entries together
MAX_RATIO = 100  # uncompressed / compressed, for entries big enough to matter
RATIO_FLOOR = 2 * 1024 * 1024  # entries smaller than this may compress as well as they like
MAX_COLUMNS = 200
MAX_SHEET_ROWS = 50_100  # rows a worksheet may declare (data, header and title block)
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (BIFF in an OLE2 compound file)
PROLOGUE_BYTES = 4096  # a DOCTYPE can only stand before the root element

_SHEET_XML = re.compile(r"^(xl/worksheets/[^/]+\.xml|content\.xml)$")
# A cell right of column MAX_COLUMNS (200, GR; keep the two in step): GS-GZ, HA-ZZ, AAA-XFD.
_WIDE_CELL = re.compile(rb'r="(G[S-Z]|[H-Z][A-Z]|[A-Z]{3})([0-9]{1,7})"')
# A row below 49,999 (five digits from 5, or six or seven digits): checked exactly.
_LOW_ROW = re.compile(rb'<row\s+r="([5-9][0-9]{4}|[1-9][0-9]{5,6})"')
_VALUE = re.compile(rb"<(v|is|f)\b")
_DIMENSION = re.compile(
    rb'<dimension\s+ref="([A-Z]{1,9})?([0-9]{1,20})?(?::([A-Z]{1,9})([0-9]{1,20}))?"'
)
EXCEL_COLUMNS = 16_384  # XFD: the widest grid Excel (and any honest writer) declares
EXCEL_ROWS = 1_048_576
CHUNK_BYTES = 1024 * 1024  # sheet XML is scanned in pieces of this size, never held whole
TAIL_BYTES = 4096  # carried between pieces so a cell reference cut in two is still seen
_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_DTD_REFUSAL = (
    "'{filename}' contains XML constructs that are not allowed (entity or DTD declarations); "
    "save it again from Excel and upload that copy"
)
_TABLE_NS = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_ODS_TABLE, _ODS_ROW = f"{_TABLE_NS}table", f"{_TABLE_NS}table-row"
_ODS_CELLS = (f"{_TABLE_NS}table-cell", f"{_TABLE_NS}covered-table-cell")
_ODS_NAME = f"{_TABLE_NS}name"
_ODS_ROWS_REPEATED = f"{_TABLE_NS}number-rows-repeated"
_ODS_COLUMNS_REPEATED = f"{_TABLE_NS}number-columns-repeated"
_ODS_VALUE_TYPE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}value-type"


def kind_of(data: bytes, filename: str) -> str:
    """ "zip" (.xlsx/.xlsm/.ods), "xls" or "csv", from the bytes rather than the name."""
    if data.startswith(ZIP_MAGIC):
        return "zip"
    if data.startswith(OLE_MAGIC):
        return "xls"
    extension = filename.lower().rsplit(".", 1)[-1]
    if extension in ("xlsx", "xlsm", "ods"):  # .xls exports are often text: read those as such
        raise SheetError(
            f"'{filename}' is not a readable .{extension} workbook (its content is not a "
            "workbook; if it is a CSV export, name it .csv)"
        )
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SheetError(
            f"'{filename}' is neither a spreadsheet (.xlsx, .xlsm, .xls, .ods) nor a CSV text file"
        )
    return "csv"


def column_number(letters: bytes | str) -> int:
    """1 for A, 27 for AA, 16384 for XFD."""
    number = 0
    for letter in letters if isinstance(letters, str) else letters.decode():
        number = number * 26 + ord(letter) - 64
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def check(data: bytes, filename: str) -> str:
    """The file's kind once every check passed; raises SheetError saying what is wrong."""
    if len(data) > MAX_FILE_BYTES:
        raise SheetError(
            f"'{filename}' is {len(data) // (1024 * 1024)} MB; sheets up to "
            f"{MAX_FILE_BYTES // (1024 * 1024)} MB are read: split it into batches"
        )
    kind = kind_of(data, filename)
    if kind == "zip":
        check_zip(data, filename)
    return kind


def check_zip(data: bytes, filename: str) -> None:
    try:
        archive = zipfile.ZipFile(BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise SheetError(
            f"'{filename}' is not a readable workbook (damaged zip: {error})"
        ) from None
    if len(entries) > MAX_ENTRIES:
        raise SheetError(
            f"'{filename}' has {len(entries)} parts inside; a workbook has far fewer "
            "(it may be a hostile file): save it again from Excel or LibreOffice"
        )
    total = sum(entry.file_size for entry in entries)
    if total > MAX_UNCOMPRESSED:
        raise SheetError(
            f"'{filename}' unpacks to {total // (1024 * 1024)} MB (more than "
            f"{MAX_UNCOMPRESSED // (1024 * 1024)} MB); it is refused as a possible zip bomb: "
            "split it into smaller sheets"
        )
    for entry in entries:
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
            raise SheetError(
                f"'{filename}' is refused as a possible zip bomb: its part '{entry.filename}' "
                f"unpacks {int(ratio)} times larger than stored; save it again from Excel"
            )
    with archive:
        for entry in entries:
            if not entry.filename.endswith(".xml") and not entry.filename.endswith(".rels"):
                continue
            with archive.open(entry) as stream:
                prologue = stream.read(PROLOGUE_BYTES)
                if _DTD.search(prologue):
                    raise SheetError(_DTD_REFUSAL.format(filename=filename))
                if entry.filename == "content.xml":
                    check_ods_cells(_pieces(prologue, stream), filename)
                elif _SHEET_XML.match(entry.filename):
                    check_cells(_pieces(prologue, stream), entry.filename, filename)


def _pieces(first: bytes, stream: IO[bytes]) -> Iterator[bytes]:
    yield first
    while piece := stream.read(CHUNK_BYTES):
        yield piece


def check_cells(pieces: Iterable[bytes], part: str, filename: str) -> None:
    """Refuse a worksheet with a value right of column MAX_COLUMNS or below MAX_SHEET_ROWS,
    naming the cell so the technician can delete it. The XML is read piece by piece (memory
    stays flat whatever its size). The declared used range (`<dimension ref="A1:K200"/>`)
    is checked first: one beyond Excel's own grid is refused as damaged or hostile; one that
    is merely wide or tall (whole formatted columns, rows cleared but not deleted) is cut to
    the cells that hold values, which is what the reader reads: empty cells far away (a
    border, a colour) are not refused."""
    sheet = part.rsplit("/", 1)[-1].removesuffix(".xml")
    widest, widest_number, lowest = "A1", 1, 0
    carried = b""
    declared_checked = False
    for piece in pieces:
        xml = carried + piece
        if not declared_checked and (b"<sheetData" in xml or len(xml) > TAIL_BYTES * 4):
            _check_declared(xml, sheet, filename)
            declared_checked = True
        # The unfinished tag (or the last few bytes) goes on with the next piece; a cell seen
        # in both is counted once it is complete, which changes nothing.
        cut = max(xml.rfind(b"<"), len(xml) - TAIL_BYTES, 0)
        for match in _WIDE_CELL.finditer(xml):
            number = column_number(match.group(1))
            if number > widest_number and _holds_value(xml, match, cut):
                widest_number, widest = number, (match.group(1) + match.group(2)).decode()
        for match in _LOW_ROW.finditer(xml):
            row = int(match.group(1))
            if row > lowest and row > MAX_SHEET_ROWS and _row_holds_value(xml, match, cut):
                lowest = row
        carried = xml[cut:]
    if not declared_checked:
        _check_declared(carried, sheet, filename)
    if widest_number > MAX_COLUMNS:
        raise SheetError(
            f"'{filename}' ({sheet}): cell {widest} holds something far right of the data "
            f"(column {widest_number}; at most {MAX_COLUMNS} columns, up to "
            f"{column_letters(MAX_COLUMNS)}, are read). Delete that cell or those columns, "
            "save and upload again"
        )
    if lowest > MAX_SHEET_ROWS:
        raise SheetError(
            f"'{filename}' ({sheet}) has rows down to {lowest}; at most "
            f"{MAX_SHEET_ROWS - 100} result rows are read per upload: split it into batches"
        )


def check_ods_cells(pieces: Iterable[bytes], filename: str) -> None:
    """The OpenDocument counterpart of `check_cells`. content.xml declares no used range: a
    cell or row stands for many through number-columns-repeated / number-rows-repeated, and
    a reader expands them. Count as the reader would, and refuse a table whose cells holding
    a value reach right of MAX_COLUMNS or below MAX_SHEET_ROWS; repeated empty cells (Calc
    ends each table with a million of them) are cut. Streamed: each element is dropped once
    it ends, so memory stays flat."""
    parser = ET.XMLPullParser(events=("start", "end"))
    open_elements: list[ET.Element] = []
    table, rows, columns, row_has_value, cell_has_content = "", 0, 0, False, False
    tail = b""
    try:
        for piece in pieces:
            if _DTD.search(tail + piece):
                raise SheetError(_DTD_REFUSAL.format(filename=filename))
            tail = piece[-16:]
            parser.feed(piece)
            # Only start and end events were asked for: each comes with its element.
            events = cast(Iterator[tuple[str, ET.Element]], parser.read_events())
            for event, element in events:
                tag = element.tag
                if event == "start":
                    open_elements.append(element)
                    if tag == _ODS_TABLE:
                        table, rows = element.get(_ODS_NAME, ""), 0
                    elif tag == _ODS_ROW:
                        columns, row_has_value = 0, False
                    elif tag in _ODS_CELLS:
                        cell_has_content = False
                    continue
                open_elements.pop()
                if tag in _ODS_CELLS:
                    columns += _repeats(element.get(_ODS_COLUMNS_REPEATED))
                    if cell_has_content or element.get(_ODS_VALUE_TYPE) is not None:
                        row_has_value = True
                        if columns > MAX_COLUMNS:
                            raise SheetError(
                                f"'{filename}' ({table}): row {rows + 1} holds something in "
                                f"column {columns} ({column_letters(columns)}), far right of "
                                f"the data (at most {MAX_COLUMNS} columns, up to "
                                f"{column_letters(MAX_COLUMNS)}, are read). Delete those "
                                "cells or columns, save and upload again"
                            )
                elif tag == _ODS_ROW:
                    rows += _repeats(element.get(_ODS_ROWS_REPEATED))
                    if row_has_value and rows > MAX_SHEET_ROWS:
                        raise SheetError(
                            f"'{filename}' ({table}) has rows down to {rows}; at most "
                            f"{MAX_SHEET_ROWS - 100} result rows are read per upload: split "
                            "it into batches"
                        )
                elif open_elements and open_elements[-1].tag in _ODS_CELLS:
                    cell_has_content = True  # text (or a note) inside the cell
                if open_elements:
                    open_elements[-1].remove(element)
    except ET.ParseError as error:
        raise SheetError(
            f"'{filename}' is not a readable workbook (damaged XML: {error})"
        ) from None


def _repeats(raw: str | None) -> int:
    return int(raw) if raw and raw.isdigit() else 1


def _holds_value(xml: bytes, cell: re.Match[bytes], cut: int) -> bool:
    """Whether the cell whose reference `cell` matched holds anything: `<c r="X9" s="3"/>`
    and `<c ...></c>` are formatting only. A tag cut off at the end of a piece is looked at
    again with the next one (or, before `cut`, counted as holding a value)."""
    if xml[cell.start() - 1 : cell.start()] not in (b" ", b"\t", b"\n", b"\r"):
        return False  # an attribute whose name merely ends in r (sqr="...")
    close = xml.find(b">", cell.end())
    if close < 0:
        return cell.start() < cut
    if xml[close - 1 : close] == b"/" or xml.startswith(b"</c>", close + 1):
        return False
    return xml.rfind(b"<c", 0, cell.start()) > xml.rfind(b">", 0, cell.start())


def _row_holds_value(xml: bytes, row: re.Match[bytes], cut: int) -> bool:
    """Whether a `<row>` holds a cell with a value (rows of formatting only are not read)."""
    close = xml.find(b">", row.end())
    if close >= 0 and xml[close - 1 : close] == b"/":
        return False
    end = xml.find(b"</row>", row.end())
    if end < 0:
        return row.start() < cut or _VALUE.search(xml, row.end()) is not None
    return _VALUE.search(xml, row.end(), end) is not None


def _check_declared(xml: bytes, sheet: str, filename: str) -> None:
    found = _DIMENSION.search(xml)
    if not found or not found.group(3):
        return
    columns, rows = column_number(found.group(3)), int(found.group(4))
    if columns > EXCEL_COLUMNS or rows > EXCEL_ROWS:
        declared = found.group(0).split(b'"')[1].decode()
        raise SheetError(
            f"'{filename}' ({sheet}) declares a used range of {declared}, larger than any "
            "worksheet can be (the file is damaged or was made to harm the reader); open it "
            "in Excel or LibreOffice, save it again and upload that copy"
        )
