"""The patient-facing text catalogs: extract every string the SMS and the portal show into
`services/infra/locales/resultflow.pot`, and bring each shipped language's .po in step with
it (new strings appear untranslated, gone ones are dropped; translations are kept).

    .venv/bin/python -m devtools.catalogs          # write the .pot, update the .po files
    .venv/bin/python -m devtools.catalogs --check  # exit 1 when they are not in step

Then translate the new `msgstr ""` entries in each .po: `tests/unit/test_languages.py`
fails while a shipped language misses one. Sources: the portal's Python and page templates
(`_()`, `N_()`, and `gettext(language, ...)`/`ngettext(language, ...)`), the SMS wording, and
the HL7 flag words of `contracts.flags` (the portal shows them next to results).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

from contracts.flags import FLAG_WORDS
from services.infra import i18n, languages
from services.infra.languages import LOCALES, SHIPPED

ROOT = Path(__file__).resolve().parent.parent
# Every portal module and page, and notify's modules (the SMS wordings).
PYTHON_GLOBS = ("services/gateway/portal*.py", "services/notify/*.py")
TEMPLATES = "services/gateway/templates"
TEMPLATE_GLOB = "portal_*.html"
# Our `gettext(language, message)` takes the message second.
PYTHON_KEYWORDS: dict[str, Any] = {"_": None, "N_": None, "gettext": (2,), "ngettext": (2, 3)}
JINJA_KEYWORDS: dict[str, Any] = {"_": None, "gettext": None, "ngettext": (1, 2)}
POT = i18n.LOCALE_DIR / f"{i18n.DOMAIN}.pot"
HEADER = "Patient-facing text of ResultFlow: the SMS and the portal."
PROJECT_VERSION = "1"


def _sources() -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for pattern in PYTHON_GLOBS:
        for path in sorted(ROOT.glob(pattern)):
            yield "python", str(path.relative_to(ROOT)), PYTHON_KEYWORDS
    for path in sorted((ROOT / TEMPLATES).glob(TEMPLATE_GLOB)):
        yield "jinja2.ext:babel_extract", f"{TEMPLATES}/{path.name}", JINJA_KEYWORDS


def extract() -> Catalog:
    """Every message of the sources, with where it is used."""
    catalog = Catalog(
        project="ResultFlow",
        version=PROJECT_VERSION,
        header_comment=f"# {HEADER}",
        fuzzy=False,
        msgid_bugs_address="",
        last_translator="ResultFlow",
        language_team="ResultFlow",
    )
    for method, name, keywords in _sources():
        options = {"extensions": "jinja2.ext.i18n"} if method != "python" else {}
        found = extract_from_file(
            method, str(ROOT / name), keywords=keywords, options=options, strip_comment_tags=True
        )
        for line, message, comments, context in found:
            catalog.add(message, locations=[(name, line)], auto_comments=comments, context=context)
    for words in FLAG_WORDS.values():
        if words:
            catalog.add(words, locations=[("contracts/flags.py", 0)])
    return catalog


def _po_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_po(out, catalog, omit_header=False, sort_output=True, include_lineno=False, width=100)
    return out.getvalue()


def updated(language: str, template: Catalog) -> Catalog:
    """The language's catalog in step with `template`, its translations kept."""
    path = i18n.po_path(language)
    if path.exists():
        with path.open("rb") as po:
            catalog = read_po(po, locale=LOCALES[language], domain=i18n.DOMAIN)
    else:
        catalog = Catalog(locale=LOCALES[language], domain=i18n.DOMAIN, project="ResultFlow")
    catalog.version = PROJECT_VERSION
    catalog.update(template, no_fuzzy_matching=True)
    catalog.obsolete.clear()
    catalog.fuzzy = False
    catalog.header_comment = f"# {HEADER} ({languages.ENGLISH_NAMES[language]})"
    catalog.last_translator = catalog.language_team = "ResultFlow"
    catalog.msgid_bugs_address = ""
    return catalog


def _without_dates(data: bytes) -> bytes:
    """A catalog's text apart from its creation/revision dates (they change every run)."""
    skip = (b'"POT-Creation-Date:', b'"PO-Revision-Date:')
    return b"\n".join(line for line in data.splitlines() if not line.startswith(skip))


def stale() -> list[Path]:
    """The catalog files that differ from what `main()` would write."""
    template = extract()
    wanted = {POT: _po_bytes(template)}
    for language in SHIPPED:
        wanted[i18n.po_path(language)] = _po_bytes(updated(language, template))
    return [
        path
        for path, data in wanted.items()
        if not path.exists() or _without_dates(path.read_bytes()) != _without_dates(data)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether they are in step")
    args = parser.parse_args(argv)
    if args.check:
        out_of_step = stale()
        for path in out_of_step:
            print(f"out of step: {path.relative_to(ROOT)}")
        return 1 if out_of_step else 0
    template = extract()
    POT.parent.mkdir(parents=True, exist_ok=True)
    POT.write_bytes(_po_bytes(template))
    for language in SHIPPED:
        catalog = updated(language, template)
        path = i18n.po_path(language)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_po_bytes(catalog))
    print(f"wrote {POT.relative_to(ROOT)} and {len(SHIPPED)} .po files ({len(template)} messages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
