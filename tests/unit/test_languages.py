"""The patient's language: codes as they arrive (ISO 639-1, regions, any case) become one of
the shipped languages or the lab default with a note for staff; the catalogs are complete in
every shipped language and in step with the code; dates read as each language writes them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from babel.messages.pofile import read_po

from devtools import catalogs
from services.convert import logic as convert_logic
from services.gateway import portal_logic
from services.infra import i18n, languages
from services.infra.languages import LanguageChoice, choose


@pytest.mark.parametrize(
    ("given", "expected"),
    [("fr", "fr"), ("FR", "fr"), ("fr-CA", "fr"), ("es_MX", "es"), (" sw ", "sw"), ("en-GB", "en")],
)
def test_a_shipped_language_is_used_whatever_its_case_or_region(given: str, expected: str) -> None:
    assert choose(given, "en") == LanguageChoice(expected)


def test_no_language_given_is_the_lab_default_without_a_note() -> None:
    assert choose("", "sw") == LanguageChoice("sw")
    assert choose(None, "fr").note == ""


@pytest.mark.parametrize("given", ["xx", "de", "french", "fra", "1a", "fr-"])
def test_an_unknown_language_falls_back_to_the_lab_default_and_says_so(given: str) -> None:
    chosen = choose(given, "es")

    assert chosen.language == "es" and chosen.fell_back
    assert chosen.note == f"Language '{given}' is not one we send in; sent in Spanish."


def test_a_lab_default_we_do_not_ship_is_english() -> None:
    assert languages.lab_default("de") == "en"
    assert choose("xx", "de").note == "Language 'xx' is not one we send in; sent in English."


def test_a_very_long_code_is_cut_in_the_note() -> None:
    assert len(choose("x" * 200, "en").given) == languages.MAX_GIVEN


def _catalog(language: str) -> list[tuple[object, object]]:
    with i18n.po_path(language).open("rb") as po:
        return [(m.id, m.string) for m in read_po(po) if m.id]


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{\w+\}|%\(\w+\)[sd]", text))


@pytest.mark.parametrize("language", languages.SHIPPED)
def test_every_message_is_translated_in_every_shipped_language(language: str) -> None:
    untranslated = [
        msgid
        for msgid, string in _catalog(language)
        if not string or (isinstance(string, tuple) and not all(string))
    ]
    assert untranslated == []


@pytest.mark.parametrize("language", languages.SHIPPED)
def test_translations_keep_every_placeholder_of_their_message(language: str) -> None:
    for msgid, string in _catalog(language):
        ids = msgid if isinstance(msgid, tuple) else (msgid,)
        strings = string if isinstance(string, tuple) else (string,)
        for text in (text for text in strings if text):  # missing: the test above
            assert _placeholders(str(text)) == _placeholders(str(ids[-1])), (msgid, text)


def test_the_catalogs_are_in_step_with_the_portal_and_sms_code() -> None:
    """A new `_()` string without a catalog entry fails here: run `python -m
    devtools.catalogs`, then translate the new entries."""
    assert catalogs.stale() == []


def test_the_portal_text_is_in_the_patient_s_language() -> None:
    assert i18n.gettext("fr", "Your results") == "Vos résultats"
    assert i18n.gettext("es", "Show my results") == "Ver mis resultados"
    assert i18n.gettext("sw", "Date of birth") == "Tarehe ya kuzaliwa"
    assert i18n.gettext("xx", "Your results") == "Your results"


@pytest.mark.parametrize(
    ("language", "long", "short"),
    [
        ("en", "26 December 2026", "26 Dec 2026"),
        ("fr", "26 décembre 2026", "26 déc. 2026"),
        ("es", "26 de diciembre de 2026", "26 dic 2026"),
        ("sw", "26 Desemba 2026", "26 Des 2026"),
    ],
)
def test_dates_are_written_as_each_language_writes_them(
    language: str, long: str, short: str
) -> None:
    day = datetime(2026, 12, 26, 9, 30, tzinfo=UTC)
    assert portal_logic.long_date(day, language) == long
    assert portal_logic.long_date("2026-12-26", language) == long
    assert i18n.short_date(day, language) == short


def test_flags_read_in_the_patient_s_language() -> None:
    assert portal_logic.flag_words("H", "fr") == "Élevé"
    assert portal_logic.flag_words("POS", "es") == "Positivo"
    assert portal_logic.flag_words("", "sw") == "Ndani ya kiwango cha kawaida"
    assert portal_logic.flag_words("ZZ", "fr") == "Voir le compte rendu"
    rows = portal_logic.result_rows([{"test": "K", "value": "7", "flag": "HH"}], "es")
    assert rows[0]["flag"] == "Muy alto: el laboratorio puede llamarle"


def test_the_link_expiry_on_the_portal_follows_the_language() -> None:
    report = {"access": {"expires_at": datetime(2027, 1, 5, tzinfo=UTC)}}
    assert portal_logic.link_expiry(report, "fr") == "5 janvier 2027"
    assert portal_logic.link_expiry({}, "fr") == ""
    assert portal_logic.long_date(date(2026, 8, 1), "sw") == "1 Agosti 2026"


def test_the_pdf_says_the_report_s_language_with_its_usual_region() -> None:
    assert convert_logic.report_language({"patient": {"language": "fr"}}) == "fr-FR"
    assert convert_logic.report_language({"patient": {"language": "sw"}}) == "sw-KE"
    assert convert_logic.report_language({"patient": {"language": "en"}}) == "en-GB"
    assert convert_logic.report_language({"patient": {}}) == "en-GB"
