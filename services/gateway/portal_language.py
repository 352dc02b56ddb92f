"""The portal in the patient's language: which language a request is answered in, and the
gettext callables the page templates use (`{{ _("...") }}`, jinja2's i18n extension).

The language: a `?lang=` the patient chose (the language links on every portal page), else
the report's patient language once the report is known (before the check: the link's
report), else the lab default. The templates' `_()` reads the page's `page_language`, so one
environment serves every language at once; staff pages have none and stay English.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from aiohttp import web

from services.infra import i18n, languages

PAGE_LANGUAGE = "page_language"


def request_language(
    request: web.Request, report: Mapping[str, Any] | None, default_language: str
) -> str:
    """The language this portal request is answered in."""
    chosen = languages.shipped(request.query.get("lang"))
    if chosen:
        return chosen
    patient = (report or {}).get("patient") or {}
    return languages.choose(str(patient.get("language") or ""), default_language).language


def chosen_language(request: web.Request) -> str | None:
    """The language the patient picked on this page (`?lang=`), to keep on the next one."""
    return languages.shipped(request.query.get("lang"))


def language_links(path: str, current: str) -> list[dict[str, Any]]:
    """The portal's language switch: each shipped language, named in itself."""
    return [
        {
            "code": code,
            "name": languages.NATIVE_NAMES[code],
            "href": f"{path}?lang={code}",
            "current": code == current,
        }
        for code in languages.SHIPPED
    ]


def page_context(
    request: web.Request, language: str, *, switch_path: str | None = None
) -> dict[str, Any]:
    """What every portal page needs for its language: the `<html lang>`, the switch."""
    links = language_links(switch_path, language) if switch_path else []
    return {PAGE_LANGUAGE: language, "language_links": links}


def _language_of(context: jinja2.runtime.Context) -> str:
    return str(context.get(PAGE_LANGUAGE) or languages.ENGLISH)


@jinja2.pass_context
def _gettext(context: jinja2.runtime.Context, message: str) -> str:
    return i18n.gettext(_language_of(context), message)


@jinja2.pass_context
def _ngettext(context: jinja2.runtime.Context, singular: str, plural: str, n: int) -> str:
    return i18n.ngettext(_language_of(context), singular, plural, n)


def install(environment: jinja2.Environment) -> None:
    """Give the page templates `_()`/`gettext()`/`ngettext()` and `{% trans %}` (the i18n
    extension must be loaded), translated into each rendered page's `page_language`."""
    environment.add_extension("jinja2.ext.i18n")
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        _gettext, _ngettext, newstyle=True
    )
    # Staff pages name a patient's language in English ("fr" -> "French").
    environment.globals["language_names"] = languages.ENGLISH_NAMES
