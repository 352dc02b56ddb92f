"""Word templates built in tests: a lab's own (logo, header and footer, a results table that
spans pages) and hostile ones, each with one thing a template must not have."""

from __future__ import annotations

import io
import zipfile

import docx
import segno
from docx.shared import Mm

BODY_END = "<w:sectPr"


def lab_template(*, body: str = "", logo: bool = True, qr_placeholder: bool = False) -> bytes:
    """A lab's template: logo and lab name in the header, page footer, patient block, the
    results table (one row per result) and comments; `body` adds a paragraph of Jinja."""
    document = docx.Document()
    header = document.sections[0].header.paragraphs[0]
    if logo:
        png = io.BytesIO()
        segno.make("LOGO").save(png, kind="png", scale=4)
        header.add_run().add_picture(io.BytesIO(png.getvalue()), width=Mm(15))
    header.add_run("  {{ lab.name }} · {{ lab.address }}")
    document.sections[0].footer.paragraphs[0].text = "{{ lab.phone }} · Ref {{ reference }}"
    document.add_heading("Laboratory report", level=1)
    document.add_paragraph("Patient: {{ patient.name }} ({{ patient.patient_id }})")
    document.add_paragraph("Born {{ patient.date_of_birth }} · sampled {{ sample_date }}")
    table = document.add_table(rows=3, cols=4)
    for cell, text in zip(table.rows[0].cells, ("Test", "Result", "Unit", "Flag"), strict=True):
        cell.text = text
    table.rows[1].cells[0].text = "{%tr for r in results %}"
    row = table.rows[2].cells
    row[0].text, row[1].text, row[2].text, row[3].text = (
        "{{ r.test }}",
        "{{ r.value }}",
        "{{ r.unit }}",
        "{{ r.flag_label }}",
    )
    table.add_row().cells[0].text = "{%tr endfor %}"
    document.add_paragraph("{% for line in comments %}{{ line }} {% endfor %}")
    if body:
        document.add_paragraph(body)
    if qr_placeholder:
        document.add_paragraph("{{ verification_qr }} {{ verification_url }}")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def with_parts(template: bytes, **changes: bytes | str) -> bytes:
    """`template` with parts added or replaced: `**{"word/vbaProject.bin": data}`."""
    source = zipfile.ZipFile(io.BytesIO(template))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if item.filename not in changes:
                target.writestr(item, source.read(item.filename))
        for name, data in changes.items():
            target.writestr(name, data.encode() if isinstance(data, str) else data)
    return out.getvalue()


def in_body(template: bytes, xml: str) -> bytes:
    """`template` with raw WordprocessingML inserted at the end of its body."""
    document = zipfile.ZipFile(io.BytesIO(template)).read("word/document.xml").decode()
    at = document.rindex(BODY_END)
    return with_parts(template, **{"word/document.xml": document[:at] + xml + document[at:]})


def part(template: bytes, name: str) -> str:
    return zipfile.ZipFile(io.BytesIO(template)).read(name).decode()


def docx_with_text(*paragraphs: str) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
