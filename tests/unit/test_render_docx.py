"""Rendering a .docx in the sandbox: what ends up in the document, and what is refused."""

from __future__ import annotations

import io
from datetime import date

import pytest
from docx import Document

from services.render import adapters, logic

LAB = logic.Lab("Example Lab & Co", "1 Example Street", "+44 20 7946 0000")


def make_template(*paragraphs: str) -> bytes:
    document = Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def document_text(data: bytes) -> str:
    """Every paragraph, table cell, header and footer of a .docx, one line each."""
    document = Document(io.BytesIO(data))
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.extend(cell.text for cell in row.cells)
    for section in document.sections:
        for part in (section.header, section.footer):
            lines.extend(p.text for p in part.paragraphs)
            for table in part.tables:
                for row in table.rows:
                    lines.extend(cell.text for cell in row.cells)
    return "\n".join(lines)


def sample_context(comments: str = "Fasting sample.") -> dict[str, object]:
    report = {
        "_id": "abc123",
        "patient": {
            "patient_id": "P-77",
            "name": "Jane <Doe> & Sons",
            "date_of_birth": "1980-03-03",
            "sex": "F",
        },
        "sample_date": "2025-05-12",
        "results": [
            {"test": "CRP", "value": "< 5.0", "unit": "mg/L", "reference_range": "< 5.0"},
            {"test": "Glucose", "value": "7.9", "unit": "mmol/L", "flag": "H"},
        ],
        "comments": comments,
    }
    return logic.build_context(report, LAB, date(2025, 5, 14))


def default_template() -> bytes:
    return adapters.DEFAULT_TEMPLATE_PATH.read_bytes()


def test_default_template_prints_patient_results_and_lab() -> None:
    text = document_text(adapters.render_docx(default_template(), sample_context()))
    for expected in (
        "Laboratory Report",
        "Jane <Doe> & Sons",
        "P-77",
        "03 Mar 1980 (45 years)",
        "Female",
        "12 May 2025",
        "14 May 2025",
        "< 5.0",
        "7.9",
        "High",
        "Fasting sample.",
        "Example Lab & Co",
        "+44 20 7946 0000",
        "This report was delivered electronically by Example Lab & Co.",
    ):
        assert expected in text
    assert "{{" not in text and "{%" not in text


def test_flagged_value_is_bold_and_normal_value_is_not() -> None:
    data = adapters.render_docx(default_template(), sample_context())
    results = Document(io.BytesIO(data)).tables[1]
    bold_by_value = {
        cell.text: any(run.bold for run in cell.paragraphs[0].runs)
        for cell in (row.cells[1] for row in results.rows[1:])
    }
    assert bold_by_value == {"< 5.0": False, "7.9": True}


def test_comments_section_is_left_out_when_there_are_no_comments() -> None:
    with_comments = document_text(adapters.render_docx(default_template(), sample_context()))
    without = document_text(adapters.render_docx(default_template(), sample_context("")))
    assert "COMMENTS" in with_comments
    assert "COMMENTS" not in without


def test_footer_has_page_x_of_y_fields() -> None:
    data = adapters.render_docx(default_template(), sample_context())
    footer = Document(io.BytesIO(data)).sections[0].footer._element.xml
    assert "PAGE" in footer and "NUMPAGES" in footer


def test_template_reaching_python_internals_is_refused() -> None:
    hostile = make_template("{{ lipsum.__globals__['os'].popen('id').read() }}")
    with pytest.raises(adapters.TemplateRenderError, match="not allowed"):
        adapters.render_docx(hostile, sample_context())


def test_template_reading_unsafe_attribute_does_not_print_blank() -> None:
    hostile = make_template("{{ lipsum.__globals__ }}")
    with pytest.raises(adapters.TemplateRenderError, match="not allowed"):
        adapters.render_docx(hostile, sample_context())


def test_template_mutating_context_is_refused() -> None:
    hostile = make_template("{{ results.append(1) }}")
    with pytest.raises(adapters.TemplateRenderError, match="not allowed"):
        adapters.render_docx(hostile, sample_context())


def test_template_building_huge_strings_is_refused() -> None:
    hostile = make_template("{{ 'x' * 1000000000 }}")
    with pytest.raises(adapters.TemplateRenderError, match="not allowed"):
        adapters.render_docx(hostile, sample_context())


def test_template_syntax_error_and_unknown_field_have_clear_reasons() -> None:
    with pytest.raises(adapters.TemplateRenderError, match="syntax error"):
        adapters.render_docx(make_template("{{ patient.name "), sample_context())
    with pytest.raises(adapters.TemplateRenderError, match="unknown field"):
        adapters.render_docx(make_template("{{ patient.nmae }}"), sample_context())


def test_file_that_is_not_a_word_document_is_refused() -> None:
    with pytest.raises(adapters.TemplateRenderError, match=r"not a valid Word"):
        adapters.render_docx(b"PK\x03\x04 not really a zip", sample_context())


async def test_renderer_runs_off_the_event_loop_and_returns_a_docx() -> None:
    renderer = adapters.ReportRenderer(default_template())
    data = await renderer.render(sample_context())
    assert data[:2] == b"PK"
    assert "Jane <Doe> & Sons" in document_text(data)
