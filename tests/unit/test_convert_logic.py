from __future__ import annotations

import hashlib

from services.convert import logic


def test_pdf_title_is_generic_and_subject_names_the_sample_date() -> None:
    metadata = logic.pdf_metadata(
        {"sample_date": "2026-11-20", "patient": {"name": "Amelia Thornbury"}}
    )
    assert metadata == logic.PdfMetadata("Laboratory report", "Results of 2026-11-20")


def test_pdf_subject_without_a_sample_date_is_still_meaningful() -> None:
    assert logic.pdf_metadata({}).subject == "Laboratory results"


def test_sha256_is_the_hex_digest_of_the_bytes() -> None:
    assert logic.sha256_hex(b"%PDF-1.7") == hashlib.sha256(b"%PDF-1.7").hexdigest()


def test_pdf_file_metadata_matches_the_data_model() -> None:
    assert logic.pdf_file_metadata("r1", "ab") == {
        "kind": "pdf",
        "report_id": "r1",
        "sha256": "ab",
        "content_type": "application/pdf",
    }
    assert logic.pdf_filename("r1") == "report-r1.pdf"


def test_only_zip_containers_are_taken_for_docx() -> None:
    assert logic.looks_like_docx(b"PK\x03\x04rest")
    assert not logic.looks_like_docx(b"Patient,Glucose\n")
    assert not logic.looks_like_docx(b"")


def test_a_pdf_needs_its_header_and_its_end_marker() -> None:
    assert logic.looks_like_pdf(b"%PDF-1.7\n...\n%%EOF\n")
    assert not logic.looks_like_pdf(b"%PDF-1.7\n truncated")
    assert not logic.looks_like_pdf(b"")


def test_libreoffice_is_restarted_every_n_documents_unless_disabled() -> None:
    assert not logic.should_restart(499, 500)
    assert logic.should_restart(500, 500)
    assert not logic.should_restart(10_000, 0)
