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
from services.gateway.permissions import SESSION_ROLES, Action, allowed, route_action
from services.gateway.web import ROLE, SESSION, USER, json_error, redirect, render, set_cookie
from services.infra.service import Resources
from services.infra.tokens import new_token

log = structlog.get_logger()

SESSION_COOKIE = "rf_session"
LOGIN_CSRF_COOKIE = "rf_login_csrf"
API_PREFIX = "/api/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(sessions: Sessions, api_tokens: ApiTokens, users: Users) -> Any:
    """Every request is one action of the permission table (`permissions`): public ones pass;
    the others need a signed-in user whose role may do it: a session cookie (then every
    state-changing request needs its CSRF token) or, for the API, a bearer token."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            return await handler(request)  # no such route (404) or method (405), for anyone
        route = request.match_info.route.resource
        action = route_action(request.method, route.canonical if route else None)
        if action is Action.PUBLIC:
            return await handler(request)
        api = request.path.startswith(API_PREFIX)
        bearer = request.headers.get("Authorization", "")
        session: dict[str, Any] | None = None
        if api and bearer.lower().startswith("bearer "):
            username = await api_tokens.user_of(bearer[7:].strip())
            role = await users.role_of(username) if username else None
            if username is None or role is None:
                return json_error(401, "unauthorized", "The API token is not valid.")
        else:
            token = request.cookies.get(SESSION_COOKIE)
            session = await sessions.get(token, utcnow()) if token else None
            username = session["username"] if session else None
            role = await users.role_of(username) if username else None
            if session is None or role not in SESSION_ROLES:
                if api:
                    return json_error(401, "unauthorized", "Send a bearer token or sign in.")
                if request.method in SAFE_METHODS:
                    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
                raise web.HTTPForbidden(text="Not logged in.")
            request[SESSION] = session
        assert username is not None and role is not None
        request[USER], request[ROLE] = username, role
        if action is None or not allowed(role, action):
            log.warning("admin.role_refused", path=request.path, role=role.value)
            what = "this" if action is None else action.value.replace("_", " ")
            detail = f"The {role.value} role may not do {what}."
            if api:
                return json_error(403, "forbidden", detail)
            return render(
                request,
                "error.html",
                {"title": "Not allowed for your role", "message": detail},
                status=403,
            )
        if session is not None and request.method not in SAFE_METHODS:
            if not await _csrf_ok(request, session):
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
        if await self._users.role_of(username) not in SESSION_ROLES:
            # A disabled account, or a system's (LIS) account, which uses API tokens only.
            log.warning("admin.login_refused_for_role")
            return self._login_page(
                request,
                error="This account cannot sign in to the dashboard.",
                next_path=next_path,
                status=403,
            )
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
    app.middlewares.append(
        auth_middleware(handlers.sessions, ApiTokens(resources.db), Users(resources.db))
    )
    app.router.add_get("/login", handlers.login_form)
    app.router.add_post("/login", handlers.login)
    app.router.add_post("/logout", handlers.logout)
