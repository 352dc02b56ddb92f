"""The patient's SMS, pure: the wording in the patient's language (from the gettext catalogs,
`services.infra.i18n`), the date in it, and what a text costs (GSM-7 or UCS-2, segments).

Every wording names the lab and carries the link, never a result or the patient's name. The
longest wording that fits one segment is sent; the catalogs keep to GSM-7 (French, Spanish
and Swahili wordings avoid the accents GSM-7 lacks), so a realistic lab name and link fit
(`tests/unit/test_sms_languages.py`). A text that cannot fit is still sent whole, and the
send path logs its measure (`sms_measure`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from services.infra import i18n, languages

log = structlog.get_logger()

# GSM 03.38 basic character set; the extension table's characters cost two septets.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_SINGLE_SEGMENT = 160
UCS2_SINGLE_SEGMENT = 70


def sms_units(text: str) -> tuple[str, int]:
    """(encoding, length in that encoding's units) of `text` as an SMS."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in text):
        return "gsm7", sum(2 if c in _GSM7_EXTENSION else 1 for c in text)
    return "ucs2", len(text.encode("utf-16-le")) // 2


def fits_one_segment(text: str) -> bool:
    encoding, units = sms_units(text)
    limit = GSM7_SINGLE_SEGMENT if encoding == "gsm7" else UCS2_SINGLE_SEGMENT
    return units <= limit


def sms_segments(text: str) -> int:
    """How many SMS segments `text` costs: a longer text is sent as parts of 153 GSM-7 or
    67 UCS-2 units each (the rest of each part holds the concatenation header)."""
    encoding, units = sms_units(text)
    single, part = (GSM7_SINGLE_SEGMENT, 153) if encoding == "gsm7" else (UCS2_SINGLE_SEGMENT, 67)
    return 1 if units <= single else -(-units // part)


def sms_measure(text: str) -> dict[str, Any]:
    """What the send path logs about an SMS: its encoding, length and segments (no text)."""
    encoding, units = sms_units(text)
    return {"encoding": encoding, "units": units, "segments": sms_segments(text)}


def gsm7_fold(text: str) -> str:
    """`text` with letters GSM-7 lacks written without their accent ("août" -> "aout"), so a
    date alone never turns an SMS into UCS-2 (70 characters a segment instead of 160)."""
    folded = []
    for char in text:
        if char in _GSM7_BASIC or char in _GSM7_EXTENSION:
            folded.append(char)
            continue
        base = "".join(
            c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c)
        )
        folded.append(base if base and all(c in _GSM7_BASIC for c in base) else char)
    return "".join(folded)


def _lab(lab_name: str, language: str) -> str:
    return " ".join(lab_name.split()) or i18n.gettext(language, "Your laboratory")


def _first_fitting(candidates: tuple[str, ...]) -> str:
    return next((text for text in candidates if fits_one_segment(text)), candidates[-1])


def sms_body(
    lab_name: str, link: str, *, updated: bool = False, until: str = "", language: str = "en"
) -> str:
    """The result SMS in the patient's `language`: who sends it, that a report is ready (or
    was updated, when an earlier version was texted), the link, the second check and, where
    it fits, until when the link works (`until`, from `sms_date`).

    No result values and no patient name: an SMS can be read by whoever holds the phone.
    The longest wording that still fits one SMS segment is used (the catalogs' wordings are
    GSM-7); the send path logs the segments of one that does not (`sms_measure`).
    """
    _ = i18n.translations(language).gettext
    values = {"lab": _lab(lab_name, language), "link": link, "until": until}
    if updated:
        wordings = (
            _(
                "{lab}: your laboratory report was updated. Open {link} and confirm "
                "your date of birth to view it."
            ),
            _("{lab}: your report was updated. Open {link} and confirm your date of birth."),
            _("{lab}: your report was updated: {link} (confirm your date of birth)"),
            _("{lab}: your report was updated: {link}"),
        )
        dated = _(
            "{lab}: your report was updated, open by {until}: {link} (confirm your date of birth)"
        )
    else:
        wordings = (
            _(
                "{lab}: your laboratory report is ready. Open {link} and confirm "
                "your date of birth to view it."
            ),
            _("{lab}: your report is ready. Open {link} and confirm your date of birth."),
            _("{lab}: your report is ready: {link} (confirm your date of birth)"),
            _("{lab}: your report is ready: {link}"),
        )
        dated = _(
            "{lab}: your report is ready, open by {until}: {link} (confirm your date of birth)"
        )
    texts = tuple(wording.format(**values) for wording in wordings)
    if not until:
        return _first_fitting(texts)
    valid = _("Link works until {until}.").format(**values)
    return _first_fitting(
        (*(f"{text} {valid}" for text in texts[:3]), dated.format(**values), *texts)
    )


def reminder_body(lab_name: str, link: str, until: str, *, language: str = "en") -> str:
    """The one reminder, in the patient's `language`: the report is still unread and its link
    ends soon. Like the first SMS, no patient data; the longest wording that fits one segment."""
    _ = i18n.translations(language).gettext
    values = {"lab": _lab(lab_name, language), "link": link, "until": until}
    wordings = (
        _(
            "{lab}: reminder, your laboratory report is waiting. Open {link} by {until} "
            "and confirm your date of birth."
        ),
        _("{lab}: your report is waiting. Open {link} by {until} (confirm your date of birth)"),
        _("{lab}: your report is waiting until {until}: {link}"),
        _("{lab}: your report is waiting: {link}"),
    )
    return _first_fitting(tuple(wording.format(**values) for wording in wordings))


def sms_date(value: datetime, language: str = "en") -> str:
    """A link's end in an SMS, in the patient's language: short, and not 03/04-ambiguous
    ("26 Dec 2026", "26 déc. 2026", "26 dic 2026", "26 Des 2026"), GSM-7 throughout."""
    return gsm7_fold(i18n.short_date(value, language))


def sms_language(report: Mapping[str, Any], default_language: str) -> str:
    """The language a report's patient is texted in: the stored one, else the lab's."""
    patient = report.get("patient") or {}
    return languages.choose(str(patient.get("language") or ""), default_language).language


def log_measure(report_id: str, language: str, body: str) -> None:
    """Every SMS's measure in the log (never its text): a warning when it takes more than
    one segment (a long lab name, a long link), so the cost is seen."""
    measure = sms_measure(body)
    level = log.warning if measure["segments"] > 1 else log.info
    level("sms.measured", report_id=report_id, language=language, **measure)
