"""Build `default.docx`, the lab report template shipped with ResultFlow.

Run `python -m devtools.build_default_template` to regenerate it. The
output is an ordinary Word document with docxtpl (Jinja) tags, so a lab can open it in Word,
restyle it and upload it as its own template. Variables it uses (see `services.render.logic`):

    lab.name, lab.address, lab.phone
    patient.name, patient.patient_id, patient.date_of_birth, patient.age, patient.sex
    sample_date, report_date, reference
    results[]: test, value, unit, reference_range, flag, flag_label, abnormal
    comments[]: one paragraph each
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.section import WD_SECTION
from docx.enum.table import WD_ALIGN_VERTICAL, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_TAB_ALIGNMENT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.oxml.xmlchemy import BaseOxmlElement
from docx.shared import Cm, Pt, RGBColor
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph
from docx.text.run import Run

OUTPUT = (
    Path(__file__).resolve().parent.parent / "services" / "render" / "templates" / "default.docx"
)

FONT = "Calibri"  # LibreOffice substitutes metric-compatible Carlito
ACCENT = RGBColor(0x1F, 0x3A, 0x5F)  # dark blue
ACCENT_HEX = "1F3A5F"
MUTED = RGBColor(0x59, 0x59, 0x59)
ALERT = RGBColor(0xB0, 0x1E, 0x1E)  # dark red for High / Low
RULE_HEX = "BFBFBF"
BAND_HEX = "F2F5F9"  # pale blue-grey behind the patient block

PAGE_WIDTH_CM = 21.0
MARGIN_CM = 1.8
CONTENT_CM = PAGE_WIDTH_CM - 2 * MARGIN_CM

# Results table columns: Test, Result, Unit, Reference range, Flag.
RESULT_WIDTHS_CM = (5.6, 3.0, 2.6, 3.6, CONTENT_CM - 14.8)
RESULT_HEADINGS = ("Test", "Result", "Unit", "Reference range", "Flag")


# --- small python-docx helpers -----------------------------------------------------------


def _set(element: BaseOxmlElement, tag: str, **attributes: str) -> BaseOxmlElement:
    """Get or create child `tag` of `element` and set its w: attributes."""
    child = element.find(qn(tag))
    if child is None:
        child = OxmlElement(tag)
        element.append(child)
    for name, value in attributes.items():
        child.set(qn(f"w:{name}"), value)
    return child


def shade(cell: _Cell, fill: str) -> None:
    _set(cell._tc.get_or_add_tcPr(), "w:shd", val="clear", color="auto", fill=fill)


def cell_margins(table: Table, top: float, bottom: float, side: float) -> None:
    margins = _set(table._tbl.tblPr, "w:tblCellMar")
    for edge, size in (("top", top), ("bottom", bottom), ("left", side), ("right", side)):
        _set(margins, f"w:{edge}", w=str(int(size * 567)), type="dxa")


def table_borders(table: Table, **edges: tuple[str, int, str]) -> None:
    """Set table borders: edge=(style, eighths of a point, colour); others are removed."""
    borders = _set(table._tbl.tblPr, "w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        style, size, color = edges.get(edge, ("nil", 0, "auto"))
        _set(borders, f"w:{edge}", val=style, sz=str(size), space="0", color=color)


def paragraph_border(paragraph: Paragraph, edge: str, color: str, size: int = 8) -> None:
    borders = _set(paragraph._p.get_or_add_pPr(), "w:pBdr")
    _set(borders, f"w:{edge}", val="single", sz=str(size), space="4", color=color)


def column_widths(table: Table, widths_cm: tuple[float, ...]) -> None:
    table.autofit = False
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    _set(table._tbl.tblPr, "w:tblLayout", type="fixed")
    for index, width in enumerate(widths_cm):
        table.columns[index].width = Cm(width)
        for cell in table.columns[index].cells:
            cell.width = Cm(width)


def spacing(paragraph: Paragraph, before: float = 0, after: float = 0) -> None:
    paragraph.paragraph_format.space_before = Pt(before)
    paragraph.paragraph_format.space_after = Pt(after)


def run(
    paragraph: Paragraph,
    text: str,
    *,
    size: float | None = None,
    bold: bool = False,
    color: RGBColor | None = None,
) -> Run:
    r = paragraph.add_run(text)
    r.bold = bold
    if size is not None:
        r.font.size = Pt(size)
    if color is not None:
        r.font.color.rgb = color
    return r


def cell_text(
    cell: _Cell,
    text: str,
    *,
    size: float = 10,
    bold: bool = False,
    color: RGBColor | None = None,
    align: WD_ALIGN_PARAGRAPH | None = None,
) -> Paragraph:
    paragraph = cell.paragraphs[0]
    spacing(paragraph)
    if align is not None:
        paragraph.alignment = align
    run(paragraph, text, size=size, bold=bold, color=color)
    return paragraph


def field(paragraph: Paragraph, instruction: str, placeholder: str, size: float) -> None:
    """A real Word field (PAGE, NUMPAGES) that Word and LibreOffice compute when laid out."""
    simple = OxmlElement("w:fldSimple")
    simple.set(qn("w:instr"), f" {instruction} \\* MERGEFORMAT ")
    r = OxmlElement("w:r")
    properties = OxmlElement("w:rPr")
    _set(properties, "w:sz", val=str(int(size * 2)))
    _set(properties, "w:color", val="595959")
    r.append(properties)
    text = OxmlElement("w:t")
    text.text = placeholder
    r.append(text)
    simple.append(r)
    paragraph._p.append(simple)


def repeat_as_header(table: Table, row_index: int = 0) -> None:
    row_properties = table.rows[row_index]._tr.get_or_add_trPr()
    _set(row_properties, "w:tblHeader", val="true")
    _set(row_properties, "w:cantSplit", val="true")


# --- the document ------------------------------------------------------------------------


def base_styles(document: DocxDocument) -> None:
    normal = document.styles["Normal"]
    normal.font.name = FONT
    normal.font.size = Pt(10)
    # East Asian / complex-script fonts too, or Word falls back for some characters.
    fonts = _set(normal.element.get_or_add_rPr(), "w:rFonts")
    for attribute in ("ascii", "hAnsi", "cs", "eastAsia"):
        fonts.set(qn(f"w:{attribute}"), FONT)
    normal.paragraph_format.space_after = Pt(0)
    normal.paragraph_format.line_spacing = 1.0


def page_setup(document: DocxDocument) -> None:
    section = document.sections[0]
    section.start_type = WD_SECTION.NEW_PAGE
    section.page_width, section.page_height = Cm(21.0), Cm(29.7)
    section.left_margin = section.right_margin = Cm(MARGIN_CM)
    section.top_margin, section.bottom_margin = Cm(1.5), Cm(1.6)
    section.header_distance, section.footer_distance = Cm(1.0), Cm(0.8)


def lab_header(document: DocxDocument) -> None:
    """Lab name and contact details in the page header, so every page carries them."""
    header = document.sections[0].header
    table = header.add_table(rows=1, cols=2, width=Cm(CONTENT_CM))
    table_borders(table)
    cell_margins(table, 0, 0, 0)
    column_widths(table, (CONTENT_CM * 0.55, CONTENT_CM * 0.45))
    left, right = table.rows[0].cells
    cell_text(left, "{{ lab.name }}", size=16, bold=True, color=ACCENT)
    left.vertical_alignment = WD_ALIGN_VERTICAL.CENTER
    cell_text(right, "{{ lab.address }}", size=9, color=MUTED, align=WD_ALIGN_PARAGRAPH.RIGHT)
    phone = right.add_paragraph()
    phone.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    run(phone, "Tel. ", size=9, color=MUTED)
    run(phone, "{{ lab.phone }}", size=9, color=MUTED)
    # python-docx headers start with one empty paragraph; it becomes the rule under the header.
    rule = header.paragraphs[0]
    header._element.remove(rule._p)
    header._element.append(rule._p)
    paragraph_border(rule, "bottom", ACCENT_HEX, size=12)
    spacing(rule, 0, 0)
    run(rule, "", size=4)


def footer(document: DocxDocument) -> None:
    paragraph = document.sections[0].footer.paragraphs[0]
    paragraph_border(paragraph, "top", RULE_HEX, size=6)
    # The stock Footer style's tab stops (3.25", 6.5") would catch the tab before ours.
    style_tabs = document.styles["Footer"].paragraph_format.tab_stops
    while len(style_tabs):
        del style_tabs[0]
    paragraph.paragraph_format.tab_stops.add_tab_stop(Cm(CONTENT_CM), WD_TAB_ALIGNMENT.RIGHT)
    run(paragraph, "This report was delivered electronically by ", size=8, color=MUTED)
    run(paragraph, "{{ lab.name }}", size=8, color=MUTED)
    run(paragraph, ".\tPage ", size=8, color=MUTED)
    field(paragraph, "PAGE", "1", 8)
    run(paragraph, " of ", size=8, color=MUTED)
    field(paragraph, "NUMPAGES", "1", 8)


def title(document: DocxDocument) -> None:
    paragraph = document.paragraphs[0] if document.paragraphs else document.add_paragraph()
    spacing(paragraph, 10, 2)
    paragraph.paragraph_format.tab_stops.add_tab_stop(Cm(CONTENT_CM), WD_TAB_ALIGNMENT.RIGHT)
    run(paragraph, "Laboratory Report", size=20, bold=True, color=ACCENT)
    run(paragraph, "\tReference ", size=9, color=MUTED)
    run(paragraph, "{{ reference }}", size=9, bold=True, color=MUTED)


def patient_block(document: DocxDocument) -> None:
    rows = (
        ("Patient", "{{ patient.name }}", "Patient ID", "{{ patient.patient_id }}"),
        (
            "Date of birth",
            "{{ patient.date_of_birth }}{% if patient.age %} ({{ patient.age }}){% endif %}",
            "Sex",
            "{{ patient.sex }}",
        ),
        ("Sample date", "{{ sample_date }}", "Report date", "{{ report_date }}"),
    )
    table = document.add_table(rows=len(rows), cols=4)
    table_borders(table, top=("single", 4, RULE_HEX), bottom=("single", 4, RULE_HEX))
    cell_margins(table, 0.09, 0.09, 0.2)
    column_widths(table, (2.6, CONTENT_CM / 2 - 2.6, 2.6, CONTENT_CM / 2 - 2.6))
    for row_index, (row, values) in enumerate(zip(table.rows, rows, strict=True)):
        for index, (cell, text) in enumerate(zip(row.cells, values, strict=True)):
            shade(cell, BAND_HEX)
            cell.vertical_alignment = WD_ALIGN_VERTICAL.CENTER
            is_label = index % 2 == 0
            cell_text(
                cell,
                text,
                size=9 if is_label else 10.5,
                color=MUTED if is_label else None,
                bold=row_index == 0 and index == 1,  # the patient's name
            )


def section_heading(document: DocxDocument, text: str) -> Paragraph:
    paragraph = document.add_paragraph()
    spacing(paragraph, 14, 4)
    paragraph.paragraph_format.keep_with_next = True
    run(paragraph, text.upper(), size=10, bold=True, color=ACCENT)
    return paragraph


def results_table(document: DocxDocument) -> None:
    section_heading(document, "Results")
    # Row 0: headings; row 1: loop start; row 2: one result; row 3: loop end. docxtpl
    # replaces rows 1 and 3 by the loop tags, repeating row 2 once per result.
    table = document.add_table(rows=4, cols=len(RESULT_HEADINGS))
    table_borders(
        table,
        top=("single", 8, ACCENT_HEX),
        bottom=("single", 8, ACCENT_HEX),
        insideH=("single", 4, RULE_HEX),
    )
    cell_margins(table, 0.08, 0.08, 0.15)
    column_widths(table, RESULT_WIDTHS_CM)
    repeat_as_header(table)
    for cell, heading in zip(table.rows[0].cells, RESULT_HEADINGS, strict=True):
        shade(cell, ACCENT_HEX)
        cell_text(cell, heading, size=9.5, bold=True, color=RGBColor(0xFF, 0xFF, 0xFF))

    cell_text(table.rows[1].cells[0], "{%tr for r in results %}")
    cell_text(table.rows[3].cells[0], "{%tr endfor %}")

    test, value, unit, reference_range, flag = table.rows[2].cells
    _set(table.rows[2]._tr.get_or_add_trPr(), "w:cantSplit", val="true")
    cell_text(test, "{{ r.test }}")
    # A flagged value is bold; the run-level tags keep the template editable in Word.
    paragraph = value.paragraphs[0]
    spacing(paragraph)
    run(paragraph, "{%r if r.abnormal %}")
    run(paragraph, "{{ r.value }}", bold=True, color=ALERT)
    run(paragraph, "{%r else %}")
    run(paragraph, "{{ r.value }}")
    run(paragraph, "{%r endif %}")
    cell_text(unit, "{{ r.unit }}", color=MUTED)
    cell_text(reference_range, "{{ r.reference_range }}", color=MUTED)
    cell_text(flag, "{{ r.flag_label }}", bold=True, color=ALERT)

    legend = document.add_paragraph()
    spacing(legend, 4, 0)
    run(
        legend,
        "Results outside the reference range are printed in bold and flagged High or Low.",
        size=8,
        color=MUTED,
    )


def comments(document: DocxDocument) -> None:
    # `{%p %}` tags remove their whole paragraph, so nothing is left when there are no comments.
    document.add_paragraph().add_run("{%p if comments %}")
    section_heading(document, "Comments")
    document.add_paragraph().add_run("{%p for line in comments %}")
    line = document.add_paragraph()
    spacing(line, 0, 3)
    run(line, "{{ line }}")
    document.add_paragraph().add_run("{%p endfor %}")
    document.add_paragraph().add_run("{%p endif %}")


def closing(document: DocxDocument) -> None:
    paragraph = document.add_paragraph()
    spacing(paragraph, 18, 0)
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run(paragraph, "— End of report —", size=8, color=MUTED)


def build() -> bytes:
    document = Document()
    base_styles(document)
    page_setup(document)
    lab_header(document)
    footer(document)
    title(document)
    patient_block(document)
    results_table(document)
    comments(document)
    closing(document)
    properties = document.core_properties
    properties.title = "Laboratory Report"
    properties.author = "ResultFlow"
    properties.comments = ""
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    target.write_bytes(build())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
