"""Pure decisions of the convert stage: PDF metadata, hashing, when to recycle LibreOffice."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.infra.languages import LOCALES

PDF_CONTENT_TYPE = "application/pdf"
REPORT_TITLE = "Laboratory report"
# Every PDF starts with this header; LibreOffice writes it first, before any page.
PDF_MAGIC = b"%PDF-"
# A .docx is a zip container: anything else is not worth handing to LibreOffice, which
# would otherwise sniff the bytes and open them as plain text.
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class PdfMetadata:
    """Document properties written into the PDF (its /Title and /Subject)."""

    title: str
    subject: str


def pdf_metadata(report: Mapping[str, Any]) -> PdfMetadata:
    # Only the sample date: the PDF's properties show up in file managers, mail previews
    # and search indexes, so the patient's name stays in the page text alone.
    sample_date = str(report.get("sample_date") or "").strip()
    subject = f"Results of {sample_date}" if sample_date else "Laboratory results"
    return PdfMetadata(title=REPORT_TITLE, subject=subject)


def report_language(report: Mapping[str, Any]) -> str:
    """The report's language for the PDF (/Lang and XMP): the patient's (a shipped language
    with its usual region, `fr` -> `fr-FR`), else British English."""
    patient = report.get("patient") or {}
    language = str(patient.get("language") or "").strip() if isinstance(patient, Mapping) else ""
    if language in LOCALES:
        return LOCALES[language].replace("_", "-")
    return language if language.replace("-", "").isalpha() and len(language) <= 12 else "en-GB"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pdf_filename(report_id: str) -> str:
    return f"report-{report_id}.pdf"


def pdf_file_metadata(report_id: str, sha256: str) -> dict[str, str]:
    """GridFS metadata of a report's PDF (see docs/data-model.md)."""
    return {
        "kind": "pdf",
        "report_id": report_id,
        "sha256": sha256,
        "content_type": PDF_CONTENT_TYPE,
    }


def looks_like_docx(data: bytes) -> bool:
    return data.startswith(ZIP_MAGIC)


def looks_like_pdf(data: bytes) -> bool:
    return data.startswith(PDF_MAGIC) and b"%%EOF" in data[-1024:]


def should_restart(converted_since_start: int, restart_every: int) -> bool:
    """True when LibreOffice has converted enough documents to be recycled.

    soffice.bin grows ~150 kB per document and slows a little; a fresh process is cheaper
    than the drift. `restart_every` <= 0 turns recycling off.
    """
    return restart_every > 0 and converted_since_start >= restart_every
