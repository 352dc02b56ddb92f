"""Staff accounts: users (argon2id passwords), sessions, login and logout with lockout, and the
middleware that puts every admin page and state-changing request behind a session and CSRF.

The stores behind it are in `accounts_store`; API requests may carry a bearer token instead
of a session (no CSRF then: the token is not sent by the browser on its own).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web

from contracts.v1 import utcnow
from services.gateway import accounts_logic as rules
from services.gateway.accounts_store import ApiTokens, Sessions, Users
from services.gateway.logic import tokens_match
from services.gateway.web import SESSION, USER, json_error, redirect, render, set_cookie
from services.infra.service import Resources
from services.infra.tokens import new_token

log = structlog.get_logger()

SESSION_COOKIE = "rf_session"
LOGIN_CSRF_COOKIE = "rf_login_csrf"
# Paths that do not need an admin session: the portal and webhooks have their own checks.
PUBLIC_PREFIXES = (
    "/login",
    "/static/",
    "/r/",
    "/webhooks/",
    "/healthz",
    "/metrics",
    "/favicon.ico",
)
# The API's own description is public: it holds no data.
PUBLIC_PATHS = frozenset({"/api/v1/openapi.json"})
API_PREFIX = "/api/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(sessions: Sessions, api_tokens: ApiTokens) -> Any:
    """Admin pages and the admin API need a signed-in user: a session cookie (then every
    state-changing request needs its CSRF token) or, for the API, a bearer token."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PUBLIC_PREFIXES) or request.path in PUBLIC_PATHS:
            return await handler(request)
        api = request.path.startswith(API_PREFIX)
        bearer = request.headers.get("Authorization", "")
        if api and bearer.lower().startswith("bearer "):
            username = await api_tokens.user_of(bearer[7:].strip())
            if username is None:
                return json_error(401, "unauthorized", "The API token is not valid.")
            request[USER] = username
            return await handler(request)
        token = request.cookies.get(SESSION_COOKIE)
        session = await sessions.get(token, utcnow()) if token else None
        if session is None:
            if api:
                return json_error(401, "unauthorized", "Send a bearer token or sign in.")
            if request.method in SAFE_METHODS:
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
            raise web.HTTPForbidden(text="Not logged in.")
        request[SESSION] = session
        request[USER] = session["username"]
        if request.method not in SAFE_METHODS and not await _csrf_ok(request, session):
            log.warning("admin.csrf_rejected", path=request.path)
            if api:
                return json_error(403, "csrf", "Send the session's X-CSRF-Token header.")
            return render(
                request,
                "error.html",
                {
                    "title": "Request refused",
                    "message": "The form expired. Go back, reload the page and try again.",
                },
                status=403,
            )
        return await handler(request)

    return middleware


async def _csrf_ok(request: web.Request, session: dict[str, Any]) -> bool:
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.content_type in FORM_TYPES:
        field = (await request.post()).get("csrf_token")
        given = field if isinstance(field, str) else None
    return tokens_match(session["csrf_token"], given)


def form_text(form: Any, name: str) -> str:
    """A text field of a posted form ("" when absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


class AccountHandlers:
    def __init__(self, resources: Resources) -> None:
        self._settings = resources.settings
        self.sessions = Sessions(resources.db)
        self._users = Users(resources.db)

    def _login_page(
        self, request: web.Request, *, error: str = "", next_path: str = "/", status: int = 200
    ) -> web.Response:
        # Reuse the browser's token: a second tab (or a stray request) must not void the first.
        csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
        response = render(
            request,
            "login.html",
            {"error": error, "next": next_path, "login_csrf": csrf},
            status=status,
        )
        set_cookie(
            response,
            LOGIN_CSRF_COOKIE,
            csrf,
            path="/login",
            secure=self._settings.cookie_secure,
            samesite="Strict",
        )
        return response

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        next_path = rules.safe_next(request.query.get("next"))
        token = request.cookies.get(SESSION_COOKIE)
        if token and await self.sessions.get(token, utcnow()):
            raise web.HTTPSeeOther(next_path)
        return self._login_page(request, next_path=next_path)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        next_path = rules.safe_next(form_text(form, "next"))
        # Login CSRF: double-submit cookie, as there is no session yet.
        if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), form_text(form, "csrf_token")):
            return self._login_page(
                request,
                error="The form expired; please try again.",
                next_path=next_path,
                status=403,
            )
        username = form_text(form, "username").strip()
        password = form_text(form, "password")
        now = utcnow()
        # The attempt is counted before the password is checked, so that parallel guesses
        # cannot all be checked while the username still looks unlocked.
        if username and not await self._users.take_attempt(username, now):
            log.warning("admin.login_locked")
            return self._login_page(
                request,
                error="Too many failed attempts. Try again in 15 minutes.",
                next_path=next_path,
                status=429,
            )
        if not username or not await self._users.check_password(username, password):
            log.warning("admin.login_failed")
            return self._login_page(
                request, error="Wrong username or password.", next_path=next_path, status=401
            )
        await self._users.clear_failures(username)
        token = await self.sessions.create(username, now)
        log.info("admin.logged_in")
        response = redirect(next_path)
        set_cookie(
            response,
            SESSION_COOKIE,
            token,
            path="/",
            secure=self._settings.cookie_secure,
            max_age=int(rules.ADMIN_SESSION_TTL.total_seconds()),
        )
        response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await self.sessions.delete(token)
        response = redirect("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response


def setup_accounts(app: web.Application, resources: Resources) -> None:
    handlers = AccountHandlers(resources)
    app.middlewares.append(auth_middleware(handlers.sessions, ApiTokens(resources.db)))
    app.router.add_get("/login", handlers.login_form)
    app.router.add_post("/login", handlers.login)
    app.router.add_post("/logout", handlers.logout)
