"""A lab's template (logo, header and footer, a results table over two pages) renders with
the verification QR and converts to PDF/A-2b: XMP identification, title, author, subject,
creation date, every font embedded, the document language and a tagged structure."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from services.convert.adapters import LibreOffice
from services.infra.template_trial import trial_render
from tests.template_files import lab_template


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[LibreOffice]:
    instance = LibreOffice("soffice", tmp_path)
    await instance.start()
    yield instance
    await instance.close()


def embedded_fonts(reader: PdfReader) -> dict[str, bool]:
    fonts: dict[str, bool] = {}
    for page in reader.pages:
        resources: Any = page["/Resources"]
        for ref in (resources.get("/Font") or {}).values():
            font = ref.get_object()
            if "/DescendantFonts" in font:
                font = font["/DescendantFonts"][0].get_object()
            descriptor = font.get("/FontDescriptor")
            has_file = descriptor is not None and any(
                k in descriptor.get_object() for k in ("/FontFile", "/FontFile2", "/FontFile3")
            )
            fonts[str(font["/BaseFont"])] = has_file
    return fonts


async def test_a_lab_template_renders_and_converts_to_a_tagged_pdfa_2b(
    office: LibreOffice,
) -> None:
    docx = trial_render(lab_template()).docx
    assert docx is not None
    pdf = await office.convert(
        docx, title="Laboratory report", subject="Results of 2026-03-02", author="Demo Lab",
        language="fr-FR",
    )  # fmt: skip
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 2  # the 40-result table spans pages
    xmp = reader.xmp_metadata
    assert xmp is not None
    raw = xmp.rdf_root.toxml()
    assert "<pdfaid:part>2</pdfaid:part>" in raw and "<pdfaid:conformance>B" in raw
    assert xmp.dc_title == {"x-default": "Laboratory report"}
    assert xmp.dc_creator == ["Demo Lab"]
    assert xmp.xmp_create_date is not None
    assert reader.metadata is not None and reader.metadata["/Subject"] == "Results of 2026-03-02"
    fonts = embedded_fonts(reader)
    assert fonts and all(fonts.values()), fonts
    root: Any = reader.trailer["/Root"]
    assert root["/Lang"] == "fr-FR"
    assert bool(root["/MarkInfo"]["/Marked"]) and "/StructTreeRoot" in root
    text = "".join(page.extract_text() for page in reader.pages).replace("\n", " ")
    assert "genuine" in text and "v/SAMPLE000000" in text.replace(" ", "")


async def test_the_plain_pdf_for_the_benchmark_is_not_pdfa(office: LibreOffice) -> None:
    docx = trial_render(lab_template()).docx
    assert docx is not None
    pdf = await office.convert(docx, title="t", subject="s", pdfa=False)
    assert b"pdfaid" not in pdf
