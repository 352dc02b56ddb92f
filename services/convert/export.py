"""How a document is exported: PDF/A-2b, tagged, with its properties (UNO values)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import uno  # Debian's python3-uno (see adapters)

PDF_FILTER = "writer_pdf_Export"
PDFA_2B = 2  # the export filter's SelectPdfVersion for PDF/A-2b


@dataclass(frozen=True)
class ExportOptions:
    title: str
    subject: str
    author: str  # the lab
    language: str  # BCP 47, e.g. en-GB
    pdfa: bool  # PDF/A-2b and tagged; False: a plain PDF (the benchmark's comparison)


def property_value(name: str, value: Any) -> Any:
    prop = uno.createUnoStruct("com.sun.star.beans.PropertyValue")
    prop.Name = name
    prop.Value = value
    return prop


def export_arguments(options: ExportOptions) -> tuple[Any, ...]:
    """The PDF export filter and its options: PDF/A-2b (SelectPdfVersion 2: fonts embedded,
    XMP with the PDF/A identification, title, author, subject and language) and a tagged PDF
    for screen readers."""
    data = [property_value("UseTaggedPDF", options.pdfa)]
    if options.pdfa:
        data.append(property_value("SelectPdfVersion", PDFA_2B))
    filter_data = uno.Any("[]com.sun.star.beans.PropertyValue", tuple(data))
    return (property_value("FilterName", PDF_FILTER), property_value("FilterData", filter_data))
