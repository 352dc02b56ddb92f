"""`POST /r/{token}/code`: the patient whose link asks for a texted code presses "Text me a
code". The gateway checks the link, the CSRF token, opt-outs and the hourly allowance
(`RESULTFLOW_ACCESS_CODE_SENDS_PER_HOUR` per link), then asks notify (`SendAccessCode`) to
make and text the code, and sends the browser back to the check page (303), which says a
code is on its way. Every request is audited like the checks themselves.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import structlog
from aiohttp import web

from contracts.v1 import SendAccessCode, utcnow
from services.gateway import portal_checks
from services.gateway.logic import tokens_match
from services.gateway.portal_language import chosen_language
from services.gateway.portal_logic import LinkState
from services.gateway.web import client_detail, redirect
from services.infra.access_codes import AccessCodes
from services.infra.audit import PATIENT, Audit
from services.infra.broker import publish
from services.infra.documents import AuditOutcome, ReportDocument
from services.infra.i18n import N_
from services.infra.opt_outs import OptOuts
from services.infra.second_check import SecondCheck
from services.infra.service import Resources

log = structlog.get_logger()

OPTED_OUT = N_(
    "We cannot text you a code: this mobile number asked us to send no more text messages. "
    "Please call the lab: they can help you see your results."
)
TOO_MANY = N_(
    "You have asked for several codes in the last hour. Please use the newest code we "
    "texted you, wait a while, or call the lab."
)


class PortalPages(Protocol):
    """What this door shares with the check itself (`portal.PortalHandlers`)."""

    async def _load(self, token: str) -> tuple[ReportDocument | None, LinkState]: ...

    def _closed_page(
        self, request: web.Request, state: LinkState, report: ReportDocument | None = None
    ) -> web.Response: ...

    def _check_page(
        self,
        request: web.Request,
        token: str,
        report: ReportDocument,
        *,
        error: str = "",
        status: int = 200,
    ) -> web.Response: ...


class PortalCodeRequests:
    def __init__(self, resources: Resources, portal: PortalPages, csrf_cookie: str) -> None:
        self._resources = resources
        self._portal = portal
        self._csrf_cookie = csrf_cookie
        self._codes = AccessCodes(resources.db)
        self._opt_outs = OptOuts(resources.db)
        self._audit = Audit(resources.db)

    async def request_code(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        report, state = await self._portal._load(token)
        if report is None or state is not LinkState.OPEN:
            await self._audited(request, report, "portal.code_refused", {"link": state.value})
            return self._portal._closed_page(request, state, report)
        if portal_checks.check_of(report) is not SecondCheck.SMS_CODE:
            return redirect(f"/r/{token}")  # this link asks for something else
        form = await request.post()
        csrf = form.get("csrf_token")
        cookie = request.cookies.get(self._csrf_cookie)
        if not tokens_match(cookie, csrf if isinstance(csrf, str) else None):
            error = portal_checks.PAGE_EXPIRED[SecondCheck.SMS_CODE]
            return self._portal._check_page(request, token, report, error=error, status=403)
        if await self._opt_outs.opted_out(str(report["patient"].get("phone") or "")):
            await self._audited(request, report, "portal.code_refused", {"reason": "opted_out"})
            return self._portal._check_page(request, token, report, error=OPTED_OUT, status=409)
        per_hour = self._resources.settings.access_code_sends_per_hour
        if not await self._codes.take_send(report["_id"], utcnow(), per_hour):
            await self._audited(request, report, "portal.code_refused", {"reason": "too_many"})
            return self._portal._check_page(request, token, report, error=TOO_MANY, status=429)
        request_id = uuid.uuid4().hex
        command = SendAccessCode(
            report_id=report["_id"],
            request_id=request_id,
            correlation_id=report["correlation_id"],
        )
        await publish(self._resources.broker, command)
        await self._audited(request, report, "portal.code_requested", {"request_id": request_id})
        log.info("portal.code_requested", report_id=report["_id"], request_id=request_id)
        chosen = chosen_language(request)
        return redirect(f"/r/{token}?code=sent" + (f"&lang={chosen}" if chosen else ""))

    async def _audited(
        self,
        request: web.Request,
        report: ReportDocument | None,
        action: str,
        detail: dict[str, str],
    ) -> None:
        outcome = (
            AuditOutcome.SUCCESS if action == "portal.code_requested" else AuditOutcome.REFUSED
        )
        report_id = report["_id"] if report else None
        detail = {**detail, **client_detail(request)}
        await self._audit.write(PATIENT, action, report_id, detail, outcome=outcome)
