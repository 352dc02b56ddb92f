"""Staff sign-in, the password step, and what the later steps share (`login_steps`): where
a login goes next, the session cookie it gets, and the audit entry of each step. A login is a
session in a stage (`accounts_logic.LoginStage`); only a finished one is signed in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web

from contracts.v1 import utcnow
from services.gateway import accounts_logic as rules
from services.gateway.accounts_logic import LoginStage
from services.gateway.accounts_store import Users
from services.gateway.logic import tokens_match
from services.gateway.permissions import SESSION_ROLES, Role, role_of
from services.gateway.sessions_store import LoginThrottle, Sessions
from services.gateway.web import client_address, cookie_name, redirect, render, set_cookie
from services.infra.audit import Audit, staff
from services.infra.service import Resources
from services.infra.settings import Settings
from services.infra.tokens import new_token

log = structlog.get_logger()

SESSION_COOKIE = "rf_session"
LOGIN_CSRF_COOKIE = "rf_login_csrf"
STAGE_PATHS = {
    LoginStage.CHANGE_PASSWORD: "/login/password",
    LoginStage.MFA_CODE: "/login/mfa",
    LoginStage.MFA_SETUP: "/login/mfa/setup",
}


def session_lifetimes(settings: Settings) -> dict[str, timedelta]:
    return {
        "idle": timedelta(minutes=settings.session_idle_minutes),
        "lifetime": timedelta(hours=settings.session_max_hours),
    }


def form_text(form: Any, name: str) -> str:
    """A text field of a posted form ("" when absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


class SignIn:
    def __init__(self, resources: Resources) -> None:
        self._settings = settings = resources.settings
        self.sessions = Sessions(resources.db, **session_lifetimes(settings))
        self._users = Users(resources.db)
        self._throttle = LoginThrottle(resources.db)
        self._audit = Audit(resources.db)
        self._mfa_roles = {
            role
            for name in settings.mfa_required_roles.split(",")
            if (role := role_of(name.strip()))
        }
        self.session_cookie = cookie_name(SESSION_COOKIE, secure=settings.cookie_secure)
        self._login_csrf_cookie = cookie_name(LOGIN_CSRF_COOKIE, secure=settings.cookie_secure)

    def _login_page(
        self,
        request: web.Request,
        *,
        error: str = "",
        next_path: str = "/",
        status: int = 200,
        retry_after: int | None = None,
    ) -> web.Response:
        # Reuse the browser's token: a second tab (or a stray request) must not void the first.
        csrf = request.cookies.get(self._login_csrf_cookie) or new_token()
        response = render(
            request,
            "login.html",
            {"error": error, "next": next_path, "login_csrf": csrf},
            status=status,
        )
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        set_cookie(
            response,
            self._login_csrf_cookie,
            csrf,
            path="/",
            secure=self._settings.cookie_secure,
            samesite="Strict",
        )
        return response

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        next_path = rules.safe_next(request.query.get("next"))
        token = request.cookies.get(self.session_cookie)
        if token and await self.sessions.get(token, utcnow()):
            raise web.HTTPSeeOther(next_path)
        return self._login_page(request, next_path=next_path)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        next_path = rules.safe_next(form_text(form, "next"))
        # Login CSRF: double-submit cookie, as there is no session yet.
        csrf = request.cookies.get(self._login_csrf_cookie)
        if not tokens_match(csrf, form_text(form, "csrf_token")):
            return self._login_page(
                request,
                error="The form expired; please try again.",
                next_path=next_path,
                status=403,
            )
        username = form_text(form, "username").strip()[:100]
        password = form_text(form, "password")
        address, now = client_address(request), utcnow()
        known = await self._users.get(username) if username else None
        limits = rules.login_limits(
            username, address, address in (known or {}).get("known_addresses", [])
        )
        # Counted before the password is checked: parallel guesses cannot all get through.
        blocked_until = await self._throttle.take(limits, now)
        if blocked_until is not None:
            await self._audited(request, username, "login.throttled", "refused")
            return self._login_page(
                request,
                error="Too many failed attempts. Try again later.",
                next_path=next_path,
                status=429,
                retry_after=rules.retry_after_seconds(blocked_until, now),
            )
        user = await self._users.check_password(username, password) if username else None
        if user is None:
            await self._audited(request, username, "login.failed", "failure")
            return self._login_page(
                request, error="Wrong username or password.", next_path=next_path, status=401
            )
        await self._throttle.succeeded(limits)
        role = None if user.get("disabled") else role_of(user.get("role"))
        if role not in SESSION_ROLES:
            # A disabled account, or a system's (LIS) account, which uses API tokens only.
            await self._audited(request, username, "login.refused", "refused")
            return self._login_page(
                request,
                error="This account cannot sign in to the dashboard.",
                next_path=next_path,
                status=403,
            )
        assert role is not None
        old = request.cookies.get(self.session_cookie)
        if old:  # whatever session the browser had ends here: a login never reuses one
            await self.sessions.delete(old)
        stage = self._next_stage(None, user, role)
        token = await self.sessions.start(
            username, stage, now, {"next": next_path, **self._where(request)}
        )
        response = await self._entered(request, user, role, stage, token, next_path)
        response.del_cookie(self._login_csrf_cookie, path="/")
        return response

    def _next_stage(
        self, current: LoginStage | None, user: dict[str, Any], role: Role
    ) -> LoginStage:
        return rules.next_stage(
            current,
            must_change_password=bool(user.get("must_change_password")),
            mfa_enrolled=bool(user.get("mfa")),
            mfa_required=role in self._mfa_roles,
        )

    async def _entered(
        self,
        request: web.Request,
        user: dict[str, Any],
        role: Role,
        stage: LoginStage,
        token: str,
        next_path: str,
    ) -> web.Response:
        """The response once a login has reached `stage` under `token`."""
        signed_in = stage is LoginStage.DONE
        if signed_in:
            await self._users.remember_address(
                user["username"], client_address(request), user.get("known_addresses", [])
            )
            await self._audited(request, user["username"], "login.succeeded", "success", role)
        response = redirect(next_path if signed_in else STAGE_PATHS[stage])
        self._set_session_cookie(response, token, signed_in=signed_in)
        return response

    @staticmethod
    def _where(request: web.Request) -> dict[str, str]:
        """Where a session was started, for its user's list of sessions."""
        agent = request.headers.get("User-Agent", "")[:200]
        return {"client": client_address(request), "user_agent": agent}

    def _set_session_cookie(
        self, response: web.StreamResponse, token: str, *, signed_in: bool
    ) -> None:
        """A half-done login's cookie lasts as long as the browser; a session's, its
        lifetime (the database ends it sooner when idle)."""
        set_cookie(
            response,
            self.session_cookie,
            token,
            path="/",
            secure=self._settings.cookie_secure,
            max_age=self._settings.session_max_hours * 3600 if signed_in else None,
        )

    async def _audited(
        self,
        request: web.Request,
        username: str,
        action: str,
        outcome: str,
        role: Role | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        await self._audit.write(
            staff(username),
            action,
            None,
            detail or {},
            role=role.value if role else None,
            outcome=outcome,
            object=username,
            client=client_address(request),
        )
