"""The patient's SMS in each shipped language: every wording is GSM-7 (160 characters a
segment, not UCS-2's 70), and with a realistic lab name and link the text sent fits one
segment in every language, for the first SMS, the updated-report SMS and the reminder.

Measured here (lab name of 32 characters, link of 77: an https host of 31 characters and a
43-character token): the longest wordings (the ones that add "to view it" or the link's end
date) do not fit with a link that long in any language and are skipped for a shorter one,
by design; the shortest wording of each kind fits in every language up to a lab name of 32
characters. Longer lab names or links can need two segments: the text is still sent whole,
and the send path logs its encoding, length and segments (`sms.measured`, a warning).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import structlog
from babel.messages.pofile import read_po

from services.infra import i18n
from services.infra.languages import SHIPPED
from services.notify import sms_text

LAB = "Nairobi West Hospital Laboratory"  # 32 characters
LINK = "https://results.nairobiwest.co.ke/r/" + "Ab3_-x" * 7 + "Q"  # 36 + 43 characters
SHORT_LINK = "https://rf.example.org/r/" + "k" * 43
EXPIRES = datetime(2026, 8, 26, 18, 0, tzinfo=UTC)  # "août": an accent GSM-7 lacks


def _sms_wordings(language: str) -> list[str]:
    """The catalog's SMS wordings in `language` (those that name the lab or the link end)."""
    with i18n.po_path(language).open("rb") as po:
        catalog = read_po(po)
    return [
        str(m.string)
        for m in catalog
        if isinstance(m.id, str) and ("{lab}" in m.id or "{until}" in m.id)
    ]


@pytest.mark.parametrize("language", SHIPPED)
def test_every_sms_wording_of_every_language_is_gsm7(language: str) -> None:
    wordings = _sms_wordings(language)

    assert len(wordings) >= 15  # sms_text's own; notify's other SMS add theirs
    for wording in wordings:
        assert sms_text.sms_units(wording)[0] == "gsm7", wording


@pytest.mark.parametrize("language", SHIPPED)
@pytest.mark.parametrize("link", [LINK, SHORT_LINK])
def test_each_sms_fits_one_segment_with_a_realistic_lab_name_and_link(
    language: str, link: str
) -> None:
    until = sms_text.sms_date(EXPIRES, language)
    texts = [
        sms_text.sms_body(LAB, link, language=language),
        sms_text.sms_body(LAB, link, until=until, language=language),
        sms_text.sms_body(LAB, link, updated=True, until=until, language=language),
        sms_text.reminder_body(LAB, link, until, language=language),
    ]
    for text in texts:
        assert text.startswith(LAB) and link in text
        assert sms_text.sms_measure(text) == {
            "encoding": "gsm7",
            "units": len(text),
            "segments": 1,
        }, text


def test_with_a_short_lab_name_and_link_the_sms_names_the_second_check_in_every_language() -> None:
    checks = {
        "en": "date of birth",
        "fr": "date de naissance",
        "es": "fecha de nacimiento",
        "sw": "tarehe yako ya kuzaliwa",
    }
    for language, check in checks.items():
        assert check in sms_text.sms_body("City Lab", SHORT_LINK, language=language)


def test_the_sms_says_the_report_was_updated_in_the_patient_s_language() -> None:
    body = sms_text.sms_body("Lab", "https://l.example/r/x", updated=True, language="fr")

    assert body == (
        "Lab : votre compte rendu d'analyses a été mis à jour. Ouvrez https://l.example/r/x "
        "et confirmez votre date de naissance pour le consulter."
    )


def test_the_reminder_reads_in_swahili_with_a_swahili_date() -> None:
    until = sms_text.sms_date(EXPIRES, "sw")

    body = sms_text.reminder_body("Lab", "https://l.example/r/x", until, language="sw")

    assert until == "26 Ago 2026"
    assert body.startswith("Lab: kikumbusho, ripoti yako ya maabara inakusubiri.")
    assert "hadi 26 Ago 2026" in body


def test_sms_dates_drop_accents_gsm7_lacks_but_keep_those_it_has() -> None:
    assert sms_text.sms_date(EXPIRES, "fr") == "26 aout 2026"  # "août"
    assert sms_text.sms_date(datetime(2026, 12, 26, tzinfo=UTC), "fr") == "26 déc. 2026"
    assert sms_text.sms_date(datetime(2026, 9, 3, tzinfo=UTC), "es") == "3 sept 2026"


def test_an_sms_that_cannot_fit_one_segment_is_sent_whole_and_measured_in_the_log() -> None:
    lab = "Laboratoire d'analyses médicales du Centre Hospitalier Régional de Saint-Denis"
    body = sms_text.sms_body(lab, LINK, language="fr")

    with structlog.testing.capture_logs() as logs:
        sms_text.log_measure("r-1", "fr", body)

    assert body.startswith(lab) and LINK in body
    assert logs == [
        {
            "event": "sms.measured",
            "log_level": "warning",
            "report_id": "r-1",
            "language": "fr",
            "encoding": "gsm7",
            "units": len(body),
            "segments": 2,
        }
    ]


def test_a_one_segment_sms_is_measured_at_info_level() -> None:
    body = sms_text.sms_body(LAB, LINK, language="es")

    with structlog.testing.capture_logs() as logs:
        sms_text.log_measure("r-2", "es", body)

    assert logs[0]["log_level"] == "info" and logs[0]["segments"] == 1


def test_segments_of_long_texts_count_the_concatenation_header() -> None:
    assert sms_text.sms_segments("a" * 160) == 1
    assert sms_text.sms_segments("a" * 161) == 2
    assert sms_text.sms_segments("a" * 306) == 2
    assert sms_text.sms_segments("a" * 307) == 3
    assert sms_text.sms_segments("ł" * 70) == 1
    assert sms_text.sms_segments("ł" * 71) == 2
