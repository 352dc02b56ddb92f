"""The template lint refuses every hostile template built here, naming the part of the .docx
and the reason, and passes a lab's own template once every placeholder is known or mapped."""

from __future__ import annotations

import pytest

from services.infra.template_context import sample_context
from services.infra.template_lint import lint
from services.infra.template_sandbox import TemplateRenderError, render_docx
from tests.template_files import in_body, lab_template, part, with_parts

W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
REMOTE_IMAGE_RELS = (
    '<Relationship Id="rIdX" TargetMode="External" Target="http://evil.example/track.png" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"/>'
)


def reasons(data: bytes) -> list[tuple[str, str]]:
    result = lint(data)
    assert not result.ok
    return [(p.part, p.reason) for p in result.problems]


def test_a_lab_template_with_logo_header_footer_and_table_passes() -> None:
    result = lint(lab_template())
    assert result.as_dict()["ok"] is True, result.as_dict()
    assert {"patient.name", "results[].test", "lab.name", "lab.phone"} <= set(result.placeholders)
    assert result.rendered is not None and result.rendered.startswith(b"PK")


def test_macros_are_refused_naming_the_vba_part() -> None:
    hostile = with_parts(lab_template(), **{"word/vbaProject.bin": b"\xd0\xcf\x11\xe0macro"})
    assert ("word/vbaProject.bin", "the template contains macros (VBA); save as .docx") in (
        reasons(hostile)
    )


def test_a_remote_image_is_refused_naming_the_relationships_part() -> None:
    template = lab_template()
    rels = part(template, "word/_rels/document.xml.rels").replace(
        "</Relationships>", REMOTE_IMAGE_RELS + "</Relationships>"
    )
    found = reasons(with_parts(template, **{"word/_rels/document.xml.rels": rels}))
    assert found[0][0] == "word/_rels/document.xml.rels"
    assert "remote image" in found[0][1] and "evil.example" in found[0][1]


def test_a_linked_word_template_is_refused() -> None:
    template = lab_template()
    settings = part(template, "word/settings.xml").replace(
        "</w:settings>", '<w:attachedTemplate r:id="rId1"/></w:settings>'
    )
    found = reasons(with_parts(template, **{"word/settings.xml": settings}))
    assert ("word/settings.xml", "the document is attached to another Word template") in found


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ('INCLUDEPICTURE "http://evil.example/x.png"', "INCLUDEPICTURE field"),
        ('INCLUDETEXT "C:\\\\secret.txt"', "INCLUDETEXT field"),
        ('DDEAUTO c:\\\\windows\\\\system32\\\\cmd.exe "/k calc.exe"', "DDEAUTO field"),
        ('DDE c:\\\\windows\\\\system32\\\\cmd.exe "/k calc.exe"', "DDE field"),
    ],
)
def test_fields_that_fetch_or_run_things_are_refused(field: str, words: str) -> None:
    xml = (
        '<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        f'<w:r><w:instrText xml:space="preserve"> {field} </w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>'
    )
    found = reasons(in_body(lab_template(), xml))
    assert any(p == "word/document.xml" and words in r for p, r in found), found


def test_a_simple_field_with_includepicture_is_refused() -> None:
    xml = '<w:p><w:fldSimple w:instr="INCLUDEPICTURE http://evil.example/a.png"/></w:p>'
    assert any("INCLUDEPICTURE" in r for _, r in reasons(in_body(lab_template(), xml)))


def test_embedded_ole_objects_and_activex_are_refused() -> None:
    ole = with_parts(
        in_body(lab_template(), "<w:p><w:r><w:object/></w:r></w:p>"),
        **{"word/embeddings/oleObject1.bin": b"\xd0\xcf\x11\xe0"},
    )
    found = reasons(ole)
    assert (
        "word/embeddings/oleObject1.bin",
        "the template embeds a file or program (OLE object)",
    ) in found
    assert ("word/document.xml", "an embedded object (OLE); paste it as a picture") in found
    activex = with_parts(lab_template(), **{"word/activeX/activeX1.xml": f"<x {W_NS}/>"})
    assert ("word/activeX/activeX1.xml", "the template contains an ActiveX control") in reasons(
        activex
    )


def test_an_altchunk_is_refused() -> None:
    found = reasons(in_body(lab_template(), '<w:altChunk r:id="rId99"/>'))
    assert ("word/document.xml", "an embedded foreign document (altChunk); remove it") in found


@pytest.mark.parametrize(
    "payload",
    [
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ patient.name.__class__.__base__ }}",
    ],
)
def test_server_side_template_injection_is_refused_by_the_sandbox(payload: str) -> None:
    found = reasons(lab_template(body=payload))
    assert any("not allowed" in r or "unknown field" in r for _, r in found), found


@pytest.mark.parametrize(
    "payload",
    [
        "{{ '{:>50000000}'.format(patient.name) }}",
        "{{ patient.name.center(50000000) }}",
        "{{ '%50000000s' % patient.name }}",
        "{{ patient.name|center(50000000) }}",
        "{{ '%50000000s'|format(patient.name) }}",
        "{% for i in range(10**8) %}x{% endfor %}",
        "{{ 'x' * 10**9 }}",
    ],
)
def test_output_bombs_are_refused_with_a_reason(payload: str) -> None:
    found = reasons(lab_template(body=payload))
    assert any("not allowed" in r for _, r in found), found


def test_a_loop_that_runs_away_is_stopped_by_the_trial_renders_limits() -> None:
    body = (
        "{% for i in range(9999) %}{% for j in range(9999) %}{{ patient.name }}"
        "{% endfor %}{% endfor %}"
    )
    found = reasons(lab_template(body=body))
    assert any("too much memory or time" in r for _, r in found), found


def test_range_overflow_at_render_time_is_a_template_error_not_a_crash() -> None:
    with pytest.raises(TemplateRenderError, match="not allowed"):
        render_docx(lab_template(body="{{ range(10**8)|list }}"), sample_context())


def test_unknown_and_missing_required_fields_are_named_and_a_mapping_fixes_unknown() -> None:
    body = "{{ patient_name }} {{ patient.shoe_size }}"
    result = lint(lab_template(body=body))
    assert result.unknown == ["patient.shoe_size", "patient_name"]
    mapped = lint(
        lab_template(body="{{ patient_name }}"), {"patient_name": {"field": "patient.name"}}
    )
    assert mapped.ok, mapped.as_dict()


def test_a_template_without_the_patient_name_or_the_results_is_refused() -> None:
    from tests.template_files import docx_with_text

    result = lint(docx_with_text("Hello {{ lab.name }}"))
    assert result.missing_required == ["patient.name", "results"]
    assert not result.ok


def test_a_file_that_is_not_a_docx_is_refused() -> None:
    assert reasons(b"%PDF-1.7 not a word file") == [("(file)", "this is not a Word .docx file")]


def test_the_documented_fields_are_the_fields_the_render_stage_provides() -> None:
    from datetime import date
    from pathlib import Path

    from services.infra.template_context import PATHS, fields_table
    from services.render.logic import Lab, build_context
    from tests.support import report_document

    context = build_context(report_document(), Lab("L", "A", "P"), date(2026, 3, 3))
    provided = set()
    for key, value in context.items():
        if isinstance(value, dict):
            provided |= {f"{key}.{sub}" for sub in value}
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            provided |= {key} | {f"{key}[].{sub}" for sub in value[0]}
        else:
            provided.add(key)
    added_at_render = {"verification_url", "verification_qr"}
    assert provided | added_at_render == set(PATHS)
    docs = (Path(__file__).parents[2] / "docs" / "templates.md").read_text()
    assert fields_table() in docs
