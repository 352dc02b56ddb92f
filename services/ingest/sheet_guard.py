"""Checks on an uploaded sheet before any reader parses it: cheap, from the zip directory and
the sheet XML alone, so a hostile file (zip bomb, thousands of entries, a DTD, one stray cell
in column XFD that makes a reader build a 16,384-column grid) is refused in milliseconds with
a message a lab technician can act on. Pure: bytes in, `SheetError` out."""

from __future__ import annotations

import re
import zipfile
from io import BytesIO

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
_WIDE_CELL = re.compile(rb'<c\b[^>]*?\br="([A-Z]{2,3})([0-9]{1,7})"')  # column AA or later
_ROW_NUMBER = re.compile(rb'<row\b[^>]*?\br="([0-9]{1,7})"')
_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


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
                    raise SheetError(
                        f"'{filename}' contains XML constructs that are not allowed (entity or "
                        "DTD declarations); save it again from Excel and upload that copy"
                    )
                if _SHEET_XML.match(entry.filename) and entry.filename != "content.xml":
                    check_cells(prologue + stream.read(), entry.filename, filename)


def check_cells(xml: bytes, part: str, filename: str) -> None:
    """Refuse a worksheet with a cell right of column MAX_COLUMNS or below MAX_SHEET_ROWS,
    naming the cell so the technician can delete it."""
    widest, widest_number = "A1", 1
    for match in _WIDE_CELL.finditer(xml):
        number = column_number(match.group(1))
        if number > widest_number:
            widest_number, widest = number, (match.group(1) + match.group(2)).decode()
    last_row = xml.rfind(b"<row ")
    found = _ROW_NUMBER.match(xml, last_row) if last_row >= 0 else None
    lowest = int(found.group(1)) if found else 0
    sheet = part.rsplit("/", 1)[-1].removesuffix(".xml")
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
