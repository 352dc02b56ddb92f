"""The second check in notify's SMS, pure: which check a new link asks, the link SMS and its
reminder worded for that check, and the text carrying a one-time code.

The check is decided when the link is made and stored on it (`access.check`), so the SMS and
the portal ask the same thing even if the lab's setting changes later. Date-of-birth wordings
are `sms_text`'s own; the PIN and code wordings follow the same rules: the lab's name, the
link, no patient data, the longest wording that fits one segment, every wording a gettext
message in the patient's language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from services.infra import i18n, second_check
from services.infra.documents import AccessDocument
from services.infra.second_check import SecondCheck
from services.infra.settings import Settings
from services.notify import sms_text

CODE_PURPOSE = "code:"  # a texted code's notification: "code:<request id>"


def code_purpose(request_id: str) -> str:
    return f"{CODE_PURPOSE}{request_id}"


def is_code(notification: Mapping[str, Any]) -> bool:
    return str(notification.get("purpose", "")).startswith(CODE_PURPOSE)


def lab_check(settings: Settings, lab_id: str) -> SecondCheck:
    """The check the report's lab asks for now (`RESULTFLOW_SECOND_CHECK[_BY_LAB]`)."""
    by_lab = second_check.parse_by_lab(settings.second_check_by_lab)
    return second_check.configured(settings.second_check, by_lab, lab_id)


def record_check(access: AccessDocument, settings: Settings, report: Mapping[str, Any]) -> None:
    """Put the check a new link asks on the link (and, for a PIN lab's report without a PIN,
    the note that says the date of birth is asked instead)."""
    decision = second_check.decide(
        lab_check(settings, report["lab_id"]), bool(report.get("pin_hash"))
    )
    access["check"] = decision.check.value
    if decision.note:
        access["check_note"] = decision.note


def _pin_wordings(updated: bool, _: Callable[[str], str]) -> tuple[tuple[str, ...], str]:
    if updated:
        return (
            _(
                "{lab}: your laboratory report was updated. Open {link} and enter the PIN "
                "from your collection receipt to view it."
            ),
            _("{lab}: your report was updated. Open {link} and enter the PIN from your receipt."),
            _("{lab}: your report was updated: {link} (have your receipt PIN ready)"),
            _("{lab}: your report was updated: {link} (receipt PIN needed)"),
            _("{lab}: your report was updated: {link}"),
        ), _(
            "{lab}: your report was updated, open by {until}: {link} (have your receipt PIN ready)"
        )
    return (
        _(
            "{lab}: your laboratory report is ready. Open {link} and enter the PIN from your "
            "collection receipt to view it."
        ),
        _("{lab}: your report is ready. Open {link} and enter the PIN from your receipt."),
        _("{lab}: your report is ready: {link} (have your receipt PIN ready)"),
        _("{lab}: your report is ready: {link} (receipt PIN needed)"),
        _("{lab}: your report is ready: {link}"),
    ), _("{lab}: your report is ready, open by {until}: {link} (have your receipt PIN ready)")


def _code_wordings(updated: bool, _: Callable[[str], str]) -> tuple[tuple[str, ...], str]:
    if updated:
        return (
            _(
                "{lab}: your laboratory report was updated. Open {link} and we will text you "
                "a code to view it."
            ),
            _("{lab}: your report was updated. Open {link}, then we will text you a code."),
            _("{lab}: your report was updated: {link} (we will text you a code)"),
            _("{lab}: report updated: {link} (we will text you a code)"),
            _("{lab}: your report was updated: {link}"),
        ), _("{lab}: your report was updated, open by {until}: {link} (we will text you a code)")
    return (
        _(
            "{lab}: your laboratory report is ready. Open {link} and we will text you a code "
            "to view it."
        ),
        _("{lab}: your report is ready. Open {link}, then we will text you a code."),
        _("{lab}: your report is ready: {link} (we will text you a code)"),
        _("{lab}: report ready: {link} (we will text you a code)"),
        _("{lab}: your report is ready: {link}"),
    ), _("{lab}: your report is ready, open by {until}: {link} (we will text you a code)")


def _lab(lab_name: str, language: str) -> str:
    return " ".join(lab_name.split()) or i18n.gettext(language, "Your laboratory")


def _first_fitting(candidates: tuple[str, ...]) -> str:
    return next((t for t in candidates if sms_text.fits_one_segment(t)), candidates[-1])


def sms_body(
    check: SecondCheck,
    lab_name: str,
    link: str,
    *,
    updated: bool = False,
    until: str = "",
    language: str = "en",
) -> str:
    """The link SMS, saying which check the portal will ask (`sms_text.sms_body` for the
    date of birth): "enter the PIN from your receipt", "we will text you a code"."""
    if check is SecondCheck.DATE_OF_BIRTH:
        return sms_text.sms_body(lab_name, link, updated=updated, until=until, language=language)
    _ = i18n.translations(language).gettext
    values = {"lab": _lab(lab_name, language), "link": link, "until": until}
    pick = _pin_wordings if check is SecondCheck.PIN else _code_wordings
    wordings, dated = pick(updated, _)
    texts = tuple(wording.format(**values) for wording in wordings)
    if not until:
        return _first_fitting(texts)
    valid = _("Link works until {until}.").format(**values)
    return _first_fitting((*(f"{t} {valid}" for t in texts[:3]), dated.format(**values), *texts))


def reminder_body(
    check: SecondCheck, lab_name: str, link: str, until: str, *, language: str = "en"
) -> str:
    """The one reminder, saying which check the portal will ask."""
    if check is SecondCheck.DATE_OF_BIRTH:
        return sms_text.reminder_body(lab_name, link, until, language=language)
    _ = i18n.translations(language).gettext
    values = {"lab": _lab(lab_name, language), "link": link, "until": until}
    if check is SecondCheck.PIN:
        first = _(
            "{lab}: reminder, your report is waiting. Open {link} by {until} with your receipt PIN."
        )
    else:
        first = _(
            "{lab}: reminder, your report is waiting. Open {link} by {until}: we will text a code."
        )
    if check is SecondCheck.PIN:
        short = _("{lab}: report waiting until {until}: {link} (receipt PIN needed)")
    else:
        short = _("{lab}: report waiting until {until}: {link} (we will text a code)")
    # Where no dated wording fits, the link SMS's own short ones still name the check.
    pick = _pin_wordings if check is SecondCheck.PIN else _code_wordings
    wordings = (
        first,
        short,
        *pick(False, _)[0][2:4],
        _("{lab}: your report is waiting until {until}: {link}"),
        _("{lab}: your report is waiting: {link}"),
    )
    return _first_fitting(tuple(wording.format(**values) for wording in wordings))


def code_body(lab_name: str, code: str, *, language: str = "en") -> str:
    """The SMS carrying a one-time code: the lab, the code, how long it works. No link (a
    code beside a link is what phishing texts look like), no patient data."""
    _ = i18n.translations(language).gettext
    minutes = int(second_check.CODE_TTL.total_seconds() // 60)
    values = {"lab": _lab(lab_name, language), "code": code, "minutes": minutes}
    wordings = (
        _(
            "{lab}: your code to see your results is {code}. It works for {minutes} minutes. "
            "Never share it: the lab will not ask you for it."
        ),
        _("{lab}: your code is {code}. It works for {minutes} minutes. Do not share it."),
        _("{lab}: your code is {code}"),
    )
    return _first_fitting(tuple(wording.format(**values) for wording in wordings))
