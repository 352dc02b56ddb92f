"""Patient-facing text in the patient's language: the gettext catalogs of the SMS and the
portal (`locales/<language>/LC_MESSAGES/resultflow.po`, one template `locales/resultflow.pot`)
and dates as each language writes them (Babel, CLDR).

The .po files are the source: each is compiled in memory the first time it is needed (no
build step, nothing compiled to keep in step). Staff-facing text stays English. Pure apart
from reading the catalogs shipped with the code.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from services.infra.languages import ENGLISH, LOCALES, SHIPPED

DOMAIN = "resultflow"
LOCALE_DIR = Path(__file__).resolve().parent / "locales"


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=len(SHIPPED))
def translations(language: str) -> NullTranslations:
    """The compiled catalog of a shipped language; English (the msgids) for any other."""
    if language not in SHIPPED or language == ENGLISH:
        path = po_path(ENGLISH)
        if not path.exists():
            return NullTranslations()
    else:
        path = po_path(language)
    with path.open("rb") as po:
        catalog = read_po(po, locale=LOCALES.get(language, LOCALES[ENGLISH]), domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def gettext(language: str, message: str) -> str:
    return translations(language).gettext(message)


def ngettext(language: str, singular: str, plural: str, n: int) -> str:
    return translations(language).ngettext(singular, plural, n)


def N_(message: str) -> str:  # the gettext convention the extractor looks for
    """Marks `message` for the catalogs where it is defined; translated where it is shown."""
    return message


def _locale(language: str) -> str:
    return LOCALES.get(language, LOCALES[ENGLISH])


def long_date(value: date | datetime, language: str) -> str:
    """A date spelled out for a patient, in their language: "26 December 2026",
    "26 décembre 2026", "26 de diciembre de 2026", "26 Desemba 2026"."""
    day = value.date() if isinstance(value, datetime) else value
    return format_date(day, format="long", locale=_locale(language))


def short_date(value: date | datetime, language: str) -> str:
    """A date in an SMS: short, with the month's name, never 03/04-ambiguous ("26 Dec 2026",
    "26 déc. 2026", "26 dic 2026", "26 Des 2026")."""
    day = value.date() if isinstance(value, datetime) else value
    return format_date(day, format="d MMM y", locale=_locale(language))
