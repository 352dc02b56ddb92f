"""The gate of the dashboard and the admin API: the middleware that puts every page and
state-changing request behind a session (and CSRF) or an API token, checked against the
permission table; and a signed-in user's own account (password change, logout). Signing in
itself is `login` (the password) and `login_steps` (what may follow it).

API requests may carry a bearer token instead of a session (no CSRF then: the token is not
sent by the browser on its own).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web

from contracts.v1 import utcnow
from services.gateway.accounts_logic import LoginStage
from services.gateway.accounts_store import ApiTokens, UserError, Users
from services.gateway.logic import tokens_match
from services.gateway.login import SignIn, form_text
from services.gateway.login_steps import LoginSteps
from services.gateway.permissions import SESSION_ROLES, Action, allowed, role_of, route_action
from services.gateway.sessions_store import Sessions
from services.gateway.web import (
    ROLE,
    SESSION,
    STILL_SIGNED_IN,
    USER,
    json_error,
    redirect,
    render,
)
from services.infra.service import Resources

log = structlog.get_logger()

API_PREFIX = "/api/"
FHIR_PREFIX = "/fhir/"  # the FHIR door (`fhir`): API tokens, as the API
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(
    sessions: Sessions, api_tokens: ApiTokens, users: Users, session_cookie: str
) -> Any:
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
        api = request.path.startswith(API_PREFIX) or request.path.startswith(FHIR_PREFIX)
        bearer = request.headers.get("Authorization", "")
        session: dict[str, Any] | None = None
        if api and bearer.lower().startswith("bearer "):
            token = bearer[7:].strip()
            username = await api_tokens.user_of(token)
            role = await users.role_of(username) if username else None
            if username is None or role is None:
                return json_error(401, "unauthorized", "The API token is not valid.")

            async def token_alive() -> bool:
                user = await api_tokens.user_of(token)
                return user is not None and await users.role_of(user) is not None

            request[STILL_SIGNED_IN] = token_alive
        else:
            cookie = request.cookies.get(session_cookie)
            session = await sessions.get(cookie, utcnow()) if cookie else None
            username = session["username"] if session else None
            role = await users.role_of(username) if username else None
            if session is None or role not in SESSION_ROLES:
                if api:
                    return json_error(401, "unauthorized", "Send a bearer token or sign in.")
                if request.method in SAFE_METHODS:
                    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
                raise web.HTTPForbidden(text="Not logged in.")
            request[SESSION] = session
            session_id = session["_id"]

            async def session_alive() -> bool:
                return await sessions.alive(session_id, utcnow())

            request[STILL_SIGNED_IN] = session_alive
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
                return form_expired(request)
        return await handler(request)

    return middleware


def form_expired(request: web.Request) -> web.Response:
    return render(
        request,
        "error.html",
        {
            "title": "Request refused",
            "message": "The form expired. Go back, reload the page and try again.",
        },
        status=403,
    )


async def _csrf_ok(request: web.Request, session: dict[str, Any]) -> bool:
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.content_type in FORM_TYPES:
        field = (await request.post()).get("csrf_token")
        given = field if isinstance(field, str) else None
    return tokens_match(session["csrf_token"], given)


class AccountHandlers(SignIn):
    """What a signed-in member of staff does with their own account."""

    async def _account_page(
        self, request: web.Request, status: int = 200, **context: Any
    ) -> web.Response:
        username = request[USER]
        return render(
            request,
            "account.html",
            {
                "account": await self._users.get(username),
                "sessions": await self.sessions.of_user(username, utcnow()),
                "this_session": request[SESSION]["_id"],
                "message": "",
                "error": "",
                **context,
            },
            status=status,
        )

    async def account(self, request: web.Request) -> web.StreamResponse:
        changed = "changed" in request.query
        message = "Your password was changed; your other sessions were ended." if changed else ""
        return await self._account_page(request, message=message)

    async def end_other_sessions(self, request: web.Request) -> web.StreamResponse:
        username = request[USER]
        ended = await self.sessions.end_all(username, but=request[SESSION]["_id"])
        await self._audited(
            request, username, "user.sessions_ended", "success", detail={"sessions_ended": ended}
        )
        return await self._account_page(request, message=f"Signed out {ended} other session(s).")

    async def change_own_password(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        username = request[USER]
        current = form_text(form, "current_password")
        new, again = form_text(form, "new_password"), form_text(form, "new_password_again")
        user = await self._users.check_password(username, current)
        try:
            if user is None:
                raise UserError("The current password is not right.")
            if new != again:
                raise UserError("The two new passwords differ.")
            await self._users.set_password(username, new, must_change=False)
        except UserError as error:
            await self._audited(request, username, "user.password_change_failed", "failure")
            return await self._account_page(request, 400, error=str(error))
        await self._audited(request, username, "user.password_changed", "success")
        # Every session of the user ends; this browser goes on in a new one.
        await self.sessions.end_all(username)
        role = role_of(request[ROLE])
        assert role is not None
        token = await self.sessions.start(username, LoginStage.DONE, utcnow(), self._where(request))
        response = redirect("/account?changed=1")  # GET: a reload does not post again
        self._set_session_cookie(response, token, signed_in=True)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(self.session_cookie)
        if token:
            await self.sessions.delete(token)
        await self._audited(request, request[USER], "logout", "success", role_of(request[ROLE]))
        response = redirect("/login")
        response.del_cookie(self.session_cookie, path="/")
        return response


def setup_accounts(app: web.Application, resources: Resources) -> None:
    handlers, steps = AccountHandlers(resources), LoginSteps(resources)
    app.middlewares.append(
        auth_middleware(
            handlers.sessions,
            ApiTokens(resources.db),
            Users(resources.db),
            handlers.session_cookie,
        )
    )
    app.router.add_get("/login", handlers.login_form)
    app.router.add_post("/login", handlers.login)
    app.router.add_get("/login/password", steps.password_form)
    app.router.add_post("/login/password", steps.change_password)
    app.router.add_get("/login/mfa", steps.mfa_form)
    app.router.add_post("/login/mfa", steps.check_mfa)
    app.router.add_get("/login/mfa/setup", steps.mfa_setup_form)
    app.router.add_post("/login/mfa/setup", steps.set_up_mfa)
    app.router.add_post("/login/recovery-codes", steps.recovery_codes_seen)
    app.router.add_get("/account", handlers.account)
    app.router.add_post("/account/password", handlers.change_own_password)
    app.router.add_post("/account/sessions/end-others", handlers.end_other_sessions)
    app.router.add_post("/logout", handlers.logout)
