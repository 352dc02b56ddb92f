"""The languages ResultFlow speaks to patients in: the SMS wording and the portal text
(gettext catalogs in `services/infra/locales`, see `services.infra.i18n`), and the language
a report's template is chosen by (`services.infra.template_rules`).

A patient's language arrives as an ISO 639-1 code, sometimes with a region or in another
case (`fr-CA`, `FR`, `es_MX`); it is kept as its two-letter code. One we do not ship, or one
that is no language code at all, falls back to the lab's default (`default_language`), and
the report says so for staff (`fallback_note`). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# English first: the lab default when the configured one is not shipped either.
SHIPPED: tuple[str, ...] = ("en", "fr", "es", "sw")
ENGLISH = "en"
# Each language's name in itself (the portal's language switch) and in English (staff notes).
NATIVE_NAMES = {"en": "English", "fr": "Français", "es": "Español", "sw": "Kiswahili"}
ENGLISH_NAMES = {"en": "English", "fr": "French", "es": "Spanish", "sw": "Swahili"}
# The Babel (CLDR) locale each language's dates are written in: "26 December 2026", not the
# US order, for English.
LOCALES = {"en": "en_GB", "fr": "fr_FR", "es": "es_ES", "sw": "sw_KE"}

_TAG = re.compile(r"^(?P<primary>[A-Za-z]{2})(?:[-_][A-Za-z0-9]{1,8})*$")
MAX_GIVEN = 35  # longer is not a language tag; stored cut to this in the note


def primary_code(code: str | None) -> str | None:
    """The ISO 639-1 code of a language tag (`fr-CA` -> `fr`, `ES` -> `es`); None when
    `code` is empty or is not such a tag (`french`, `fra`, `x1`)."""
    found = _TAG.match((code or "").strip())
    return found["primary"].lower() if found else None


def lab_default(configured: str) -> str:
    """The lab's default language: the configured one when shipped, else English."""
    code = primary_code(configured)
    return code if code in SHIPPED else ENGLISH


@dataclass(frozen=True)
class LanguageChoice:
    """The language to send and show in, and what was given when it could not be used."""

    language: str  # one of SHIPPED
    given: str = ""  # the code as it came, when it could not be used
    fell_back: bool = False

    @property
    def note(self) -> str:
        """For staff (report page, API); "" when the given language is used."""
        return fallback_note(self.given, self.language) if self.fell_back else ""


def choose(code: str | None, default: str) -> LanguageChoice:
    """The patient's language if shipped; else the lab default, saying it fell back. No code
    at all is no fall back: the lab default is simply the language."""
    fallback = lab_default(default)
    given = (code or "").strip()
    if not given:
        return LanguageChoice(fallback)
    primary = primary_code(given)
    if primary in SHIPPED:
        return LanguageChoice(primary)
    return LanguageChoice(fallback, given[:MAX_GIVEN], fell_back=True)


def fallback_note(given: str, language: str) -> str:
    """e.g. "Language 'xx' is not one we send in; sent in English." """
    name = ENGLISH_NAMES.get(language, language)
    return f"Language '{given}' is not one we send in; sent in {name}."


def shipped(code: str | None) -> str | None:
    """`code` as a shipped language, or None (e.g. a `?lang=` the portal cannot honour)."""
    primary = primary_code(code)
    return primary if primary in SHIPPED else None
