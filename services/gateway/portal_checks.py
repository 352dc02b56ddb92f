"""The portal's second check, whichever the link asks (`services.infra.second_check`): what
the patient entered, whether it is right, and the words for each check.

The date of birth, the receipt PIN and the texted code go through the same door
(`PortalHandlers.check`): one attempt is taken from the link before comparing, the same
limit locks the link, the same audit events record each try. Only reading and comparing
differ, and that is here. A code is spent the moment it matches (`AccessCodes.use`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from aiohttp import web

from contracts.v1 import utcnow
from services.gateway import portal_logic as rules
from services.gateway.portal_language import chosen_language
from services.infra import second_check
from services.infra.access_codes import AccessCodes
from services.infra.documents import ReportDocument
from services.infra.i18n import N_, ngettext
from services.infra.second_check import SecondCheck
from services.infra.settings import Settings

Entered = date | str

INCOMPLETE = {
    SecondCheck.DATE_OF_BIRTH: N_("Please enter a complete date of birth."),
    SecondCheck.PIN: N_("Please enter the PIN from your receipt: 4 to 8 digits."),
    SecondCheck.SMS_CODE: N_("Please enter the 6-digit code from the text message."),
}
PAGE_EXPIRED = {
    SecondCheck.DATE_OF_BIRTH: N_("The page expired. Please enter your date of birth again."),
    SecondCheck.PIN: N_("The page expired. Please enter your PIN again."),
    SecondCheck.SMS_CODE: N_("The page expired. Please enter your code again."),
}
# Shown on the check page after `?code=<key>` (the code request redirects there).
CODE_NOTICES = {
    "sent": N_(
        "We have texted a code to your mobile phone. It works for 10 minutes: enter it below."
    ),
}


def check_of(report: Mapping[str, Any]) -> SecondCheck:
    return second_check.check_of(report.get("access"))


def entered(check: SecondCheck, fields: Mapping[str, str]) -> Entered | None:
    """The value typed for `check`, normalised; None when it cannot be one (nothing is
    counted then: a typo in the form is no guess)."""
    if check is SecondCheck.PIN:
        try:
            return second_check.normalise_pin(fields.get("pin"))
        except second_check.PinError:
            return None
    if check is SecondCheck.SMS_CODE:
        return second_check.parse_code(fields.get("code"))
    return rules.parse_date_of_birth(fields)


def wrong_answer(check: SecondCheck, language: str, left: int) -> str:
    """What a wrong try says, with the attempts the link has left."""
    if check is SecondCheck.PIN:
        text = ngettext(
            language,
            "That PIN does not match our records. %(num)d attempt left.",
            "That PIN does not match our records. %(num)d attempts left.",
            left,
        )
    elif check is SecondCheck.SMS_CODE:
        text = ngettext(
            language,
            "That code is wrong, used or expired. %(num)d attempt left.",
            "That code is wrong, used or expired. %(num)d attempts left.",
            left,
        )
    else:
        text = ngettext(
            language,
            "That date of birth does not match our records. %(num)d attempt left.",
            "That date of birth does not match our records. %(num)d attempts left.",
            left,
        )
    return text % {"num": left}


def page_fields(request: web.Request, report: Mapping[str, Any]) -> dict[str, Any]:
    """What the check page needs to ask for the link's check (the language the patient
    picked stays with the code request too)."""
    notice = CODE_NOTICES.get(request.query.get("code", ""), "")
    chosen = chosen_language(request)
    code_action = f"/r/{request.match_info['token']}/code" + (f"?lang={chosen}" if chosen else "")
    return {"check": check_of(report).value, "notice": notice, "code_action": code_action}


class CheckMatcher:
    def __init__(self, settings: Settings, codes: AccessCodes) -> None:
        self._secret = settings.second_check_secret
        self._codes = codes

    async def matches(self, check: SecondCheck, report: ReportDocument, value: Entered) -> bool:
        """Whether `value` is right for the report's check (a right code is spent here)."""
        if check is SecondCheck.PIN:
            return second_check.hash_matches(
                self._secret, "pin", str(value), report.get("pin_hash")
            )
        if check is SecondCheck.SMS_CODE:
            code_hash = second_check.keyed_hash(self._secret, "code", str(value))
            link_hash = report["access"]["token_hash"]
            return await self._codes.use(report["_id"], code_hash, link_hash, utcnow())
        stored = report["patient"].get("date_of_birth")
        return isinstance(value, date) and rules.date_of_birth_matches(value, stored)
