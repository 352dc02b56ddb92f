"""The patient portal: the SMS link, the second check its lab chose (date of birth, receipt
PIN or texted code: `portal_checks`, `portal_code`), then the results as a page and the PDF.

The link token is looked up by its SHA-256 only, and is used once per visit: a passed check
trades it for a session cookie and sends the browser (303) to `/portal/report`, so the token
stays in no later URL (history, a shared device, the PDF's address). No patient data and no
token ever reaches the logs (the access log redacts `/r/<token>`). The portal's own sessions
(`portal_sessions`) are written only here; the link's attempts through the `reports` owner.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from aiohttp import web

from contracts.v1 import utcnow
from services.gateway import portal_checks
from services.gateway import portal_logic as rules
from services.gateway.logic import tokens_match
from services.gateway.portal_code import PortalCodeRequests
from services.gateway.portal_language import chosen_language, page_context, request_language
from services.gateway.portal_logic import LinkState
from services.gateway.report_files import verified_pdf
from services.gateway.web import client_detail, pdf_response, redirect, render, set_cookie
from services.infra.access_codes import AccessCodes
from services.infra.audit import PATIENT, Audit
from services.infra.database import Database
from services.infra.documents import AuditOutcome, ReportDocument
from services.infra.errors import ReportNotFoundError
from services.infra.i18n import gettext
from services.infra.metrics import PORTAL_CHECKS, PORTAL_LOCKOUTS
from services.infra.service import Resources
from services.infra.tokens import new_token, token_hash

log = structlog.get_logger()

PORTAL_CSRF_COOKIE = "rf_portal_csrf"
PORTAL_SESSION_COOKIE = "rf_portal"
# Where a patient's session lives: no token in any of these URLs.
PORTAL_PATH = "/portal"


class PortalSessions:
    """A patient's short session after the date-of-birth check, bound to one report."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, report_id: str, now: datetime) -> str:
        token = new_token()
        await self._db.portal_sessions.insert_one(
            {
                "token_hash": token_hash(token),
                "report_id": report_id,
                "created_at": now,
                "expires_at": now + rules.PORTAL_SESSION_TTL,
            }
        )
        return token

    async def report_id(self, token: str, now: datetime) -> str | None:
        """The report this session opens, while it lasts."""
        found = await self._db.portal_sessions.find_one(
            {"token_hash": token_hash(token), "expires_at": {"$gt": now}}
        )
        return None if found is None else str(found["report_id"])


class PortalHandlers:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._settings = resources.settings
        self._reports = resources.reports
        self._sessions = PortalSessions(resources.db)
        self._audit = Audit(resources.db)
        self._matcher = portal_checks.CheckMatcher(self._settings, AccessCodes(resources.db))

    def _lab(self) -> dict[str, str]:
        return {"lab_name": self._settings.lab_name, "lab_phone": self._settings.lab_phone}

    def _set_cookie(
        self, response: web.StreamResponse, name: str, value: str, path: str, max_age: int
    ) -> None:
        """A portal cookie: only for the pages at `path`, never sent from another site."""
        set_cookie(
            response,
            name,
            value,
            path=path,
            secure=self._settings.cookie_secure,
            max_age=max_age,
            samesite="Strict",
        )

    async def _load(self, token: str) -> tuple[ReportDocument | None, LinkState]:
        report = await self._reports.by_link_token(token)
        return report, rules.link_state(report, utcnow(), self._settings.portal_max_attempts)

    def _language(self, request: web.Request, report: ReportDocument | None) -> str:
        return request_language(request, report, self._settings.default_language)

    def _closed_page(
        self, request: web.Request, state: LinkState, report: ReportDocument | None = None
    ) -> web.Response:
        status, title, message = rules.CLOSED_PAGES[state]
        language = self._language(request, report)
        context = {
            "title": gettext(language, title),
            "message": gettext(language, message),
            "state": state.value,
            **page_context(request, language),
            **self._lab(),
        }
        return render(request, "portal_message.html", context, status=status)

    def _check_page(
        self,
        request: web.Request,
        token: str,
        report: ReportDocument,
        *,
        error: str = "",
        status: int = 200,
    ) -> web.Response:
        csrf = request.cookies.get(PORTAL_CSRF_COOKIE) or new_token()
        language = self._language(request, report)
        chosen = chosen_language(request)
        response = render(
            request,
            "portal_check.html",
            {
                "token": token,
                "csrf_token": csrf,
                "error": gettext(language, error) if error else "",
                "expires": rules.link_expiry(report, language),
                # The language the patient picked stays with the form's answer.
                "action": f"/r/{token}" + (f"?lang={chosen}" if chosen else ""),
                **page_context(request, language, switch_path=f"/r/{token}"),
                **portal_checks.page_fields(request, report),
                **self._lab(),
            },
            status=status,
        )
        self._set_cookie(response, PORTAL_CSRF_COOKIE, csrf, f"/r/{token}", max_age=3600)
        return response

    async def check_form(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        report, state = await self._load(token)
        if report is None or state is not LinkState.OPEN:
            return self._closed_page(request, state, report)
        return self._check_page(request, token, report)

    async def check(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        report, state = await self._load(token)
        if report is None or state is not LinkState.OPEN:
            await self._check_refused(request, report, state.value)
            return self._closed_page(request, state, report)
        form = await request.post()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        check = portal_checks.check_of(report)  # date of birth, receipt PIN or texted code
        if not tokens_match(request.cookies.get(PORTAL_CSRF_COOKIE), fields.get("csrf_token")):
            error = portal_checks.PAGE_EXPIRED[check]
            return self._check_page(request, token, report, error=error, status=403)
        entered = portal_checks.entered(check, fields)
        if entered is None:
            error = portal_checks.INCOMPLETE[check]
            return self._check_page(request, token, report, error=error, status=400)
        # Take one of the link's attempts before comparing: parallel guesses must not all be
        # compared while the count still looks low.
        limit = self._settings.portal_max_attempts
        attempts = await self._reports.take_check_attempt(report["_id"], limit)
        if attempts is None:
            await self._check_refused(request, report, LinkState.LOCKED.value)
            return self._closed_page(request, LinkState.LOCKED, report)
        if not await self._matcher.matches(check, report, entered):
            return await self._wrong_date(request, token, report, attempts)
        await self._reports.clear_failed_checks(report["_id"])
        session = await self._sessions.create(report["_id"], utcnow())
        passed = {"check": check.value, **client_detail(request)}
        await self._audit.write(PATIENT, "portal.check_passed", report["_id"], passed)
        log.info("portal.check_passed", report_id=report["_id"])
        PORTAL_CHECKS.labels("passed").inc()
        # The token is spent for this visit: from here on the URL holds none (only the
        # language the patient picked, if any).
        chosen = chosen_language(request)
        response = redirect(f"{PORTAL_PATH}/report" + (f"?lang={chosen}" if chosen else ""))
        self._set_cookie(
            response,
            PORTAL_SESSION_COOKIE,
            session,
            PORTAL_PATH,
            max_age=int(rules.PORTAL_SESSION_TTL.total_seconds()),
        )
        return response

    async def _wrong_date(
        self, request: web.Request, token: str, report: ReportDocument, failed: int
    ) -> web.StreamResponse:
        """After the `failed`-th attempt (already counted) proved wrong."""
        limit = self._settings.portal_max_attempts
        check = portal_checks.check_of(report)
        detail = {"check": check.value, **client_detail(request)}
        PORTAL_CHECKS.labels("failed").inc()
        if failed >= limit:
            await self._reports.lock_link(report["_id"])
            await self._audit.write(
                PATIENT, "portal.locked", report["_id"], detail, outcome=AuditOutcome.FAILURE
            )
            log.warning("portal.locked", report_id=report["_id"])
            PORTAL_LOCKOUTS.inc()
            return self._closed_page(request, LinkState.LOCKED, report)
        await self._audit.write(
            PATIENT, "portal.check_failed", report["_id"], detail, outcome=AuditOutcome.FAILURE
        )
        log.info("portal.check_failed", report_id=report["_id"], failed_attempts=failed)
        left = rules.remaining_attempts(failed, limit)
        wrong = portal_checks.wrong_answer(check, self._language(request, report), left)
        return self._check_page(request, token, report, error=wrong, status=400)

    async def _check_refused(
        self, request: web.Request, report: ReportDocument | None, why: str
    ) -> None:
        """A date of birth sent to a link that is not open (unknown, expired, locked...)."""
        detail = {"link": why, **client_detail(request)}
        report_id = report["_id"] if report else None
        outcome = AuditOutcome.REFUSED
        await self._audit.write(PATIENT, "portal.check_refused", report_id, detail, outcome=outcome)

    async def _authorised(self, request: web.Request) -> ReportDocument | web.Response:
        """The report whose owner passed the check in this browser; else the page that says
        how to get back in (there is no token here to send the browser back to)."""
        session = request.cookies.get(PORTAL_SESSION_COOKIE)
        report_id = await self._sessions.report_id(session, utcnow()) if session else None
        if report_id is None:
            return self._session_ended(request)
        try:
            report = await self._reports.get(report_id)
        except ReportNotFoundError:
            return self._session_ended(request)
        state = rules.link_state(report, utcnow(), self._settings.portal_max_attempts)
        if state is not LinkState.OPEN:
            return self._closed_page(request, state, report)
        return report

    def _session_ended(self, request: web.Request) -> web.Response:
        language = self._language(request, None)
        message = gettext(
            language,
            "For your privacy, the report is shown for a short time only. Open the link in "
            "the text message from the lab again and confirm who you are.",
        )
        title = gettext(language, "Please open your link again")
        context = {"title": title, "message": message, "state": "session"}
        context |= page_context(request, language)
        return render(request, "portal_message.html", context | self._lab(), status=403)

    async def report_page(self, request: web.Request) -> web.StreamResponse:
        # The results are on the page itself; the PDF's loads are audited where it is served.
        report = await self._authorised(request)
        if isinstance(report, web.Response):
            return report
        await self._audit.write(PATIENT, "portal.opened", report["_id"], client_detail(request))
        await self._reports.mark_opened(report["_id"], utcnow())
        log.info("portal.opened", report_id=report["_id"])
        language = self._language(request, report)
        return render(
            request,
            "portal_report.html",
            {
                "results": rules.result_rows(list(report.get("results") or []), language),
                "comments": report.get("comments", ""),
                "sample_date": rules.long_date(report.get("sample_date"), language),
                "version": report.get("version", 1),
                "expires": rules.link_expiry(report, language),
                "pdf": bool(report.get("pdf_file_id")),
                **page_context(request, language, switch_path=f"{PORTAL_PATH}/report"),
                **self._lab(),
            },
        )

    async def report_pdf(self, request: web.Request) -> web.StreamResponse:
        report = await self._authorised(request)
        if isinstance(report, web.Response):
            return report
        if not report.get("pdf_file_id"):
            raise web.HTTPNotFound()
        client = client_detail(request)
        # The stored SHA-256 is checked on every read (a mismatch is refused and audited).
        data = await verified_pdf(self._resources.files, self._audit, report, PATIENT, client)
        download = request.query.get("download") == "1"
        # Every time the PDF leaves: opened in a tab, or saved.
        action = "report.downloaded" if download else "report.viewed"
        await self._audit.write(PATIENT, action, report["_id"], client)
        log.info(action, report_id=report["_id"])
        return pdf_response(data, report.get("sample_date"), download=download)


def setup_portal(app: web.Application, resources: Resources) -> None:
    handlers = PortalHandlers(resources)
    r = app.router
    r.add_get("/r/{token}", handlers.check_form)
    r.add_post("/r/{token}", handlers.check)
    codes = PortalCodeRequests(resources, handlers, PORTAL_CSRF_COOKIE)
    r.add_post("/r/{token}/code", codes.request_code)
    r.add_get(f"{PORTAL_PATH}/report", handlers.report_page)
    r.add_get(f"{PORTAL_PATH}/report.pdf", handlers.report_pdf)
