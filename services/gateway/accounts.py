"""Staff accounts: users (argon2id passwords), sessions, login and logout with lockout, and the
middleware that puts every admin page and state-changing request behind a session and CSRF.

Users, sessions and login failures are written only here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.errors import DuplicateKeyError

from contracts.v1 import utcnow
from services.gateway import accounts_logic as rules
from services.gateway.logic import tokens_match
from services.gateway.web import SESSION, USER, redirect, render, set_cookie
from services.infra.database import Database
from services.infra.service import Resources
from services.infra.tokens import new_token, token_hash

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
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# argon2-cffi's default type is argon2id.
_hasher = PasswordHasher()
# Verified against when the username is unknown, so both cases take as long.
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


class UserError(ValueError):
    """A user cannot be created as asked; the text says why."""


async def create_user(db: Database, username: str, password: str) -> None:
    """Create an admin user with an argon2id password hash (used by `resultflow users create`)."""
    if problem := rules.username_problem(username):
        raise UserError(problem)
    if problem := rules.password_problem(password):
        raise UserError(problem)
    password_hash = await asyncio.to_thread(_hasher.hash, password)
    try:
        await db.users.insert_one(
            {
                "username": username,
                "password_hash": password_hash,
                "role": "admin",
                "created_at": utcnow(),
            }
        )
    except DuplicateKeyError:
        raise UserError(f"User {username!r} already exists.") from None


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class Users:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def take_attempt(self, username: str, now: datetime) -> bool:
        """Count one login attempt for `username` before its password is checked; False
        (nothing counted) when the username is locked.

        Counting first, in one atomic update, is what keeps parallel guesses from all being
        checked while the count still looks low. The attempt that reaches the limit locks the
        username at once: its password is still checked, and a right one clears the lock.
        """
        with contextlib.suppress(DuplicateKeyError):  # a parallel attempt created it first
            await self._db.login_failures.update_one(
                {"_id": username}, {"$setOnInsert": {"failures": 0}}, upsert=True
            )
        unlocked = {"$or": [{"locked_until": None}, {"locked_until": {"$lte": now}}]}
        counted = await self._db.login_failures.find_one_and_update(
            {"_id": username, "failures": {"$lt": rules.LOGIN_MAX_FAILURES - 1}, **unlocked},
            {"$inc": {"failures": 1}, "$set": {"last_failure_at": now}},
        )
        if counted is not None:
            return True
        locked = await self._db.login_failures.find_one_and_update(
            {"_id": username, "failures": {"$gte": rules.LOGIN_MAX_FAILURES - 1}, **unlocked},
            {
                "$set": {
                    "failures": 0,
                    "last_failure_at": now,
                    "locked_until": rules.lock_after_failure(rules.LOGIN_MAX_FAILURES, now),
                }
            },
        )
        return locked is not None

    async def check_password(self, username: str, password: str) -> bool:
        user = await self._db.users.find_one({"username": username})
        password_hash = user["password_hash"] if user else _DUMMY_HASH
        # argon2 is deliberately slow (tens of ms): keep it off the event loop.
        ok = await asyncio.to_thread(_verify, password_hash, password)
        return ok and user is not None

    async def clear_failures(self, username: str) -> None:
        await self._db.login_failures.delete_one({"_id": username})


class Sessions:
    """Admin sessions: the cookie holds a random token, the database only its SHA-256."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, username: str, now: datetime) -> str:
        token = new_token()
        await self._db.sessions.insert_one(
            {
                "token_hash": token_hash(token),
                "username": username,
                "csrf_token": new_token(),
                "created_at": now,
                "expires_at": now + rules.ADMIN_SESSION_TTL,
            }
        )
        return token

    async def get(self, token: str, now: datetime) -> dict[str, Any] | None:
        return await self._db.sessions.find_one(
            {"token_hash": token_hash(token), "expires_at": {"$gt": now}}
        )

    async def delete(self, token: str) -> None:
        await self._db.sessions.delete_one({"token_hash": token_hash(token)})


def auth_middleware(sessions: Sessions) -> Any:
    """Admin pages need a session; every state-changing admin request needs its CSRF token."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PUBLIC_PREFIXES):
            return await handler(request)
        token = request.cookies.get(SESSION_COOKIE)
        session = await sessions.get(token, utcnow()) if token else None
        if session is None:
            if request.method in SAFE_METHODS:
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
            raise web.HTTPForbidden(text="Not logged in.")
        request[SESSION] = session
        request[USER] = session["username"]
        if request.method not in SAFE_METHODS:
            given = request.headers.get("X-CSRF-Token")
            if given is None:
                field = (await request.post()).get("csrf_token")
                given = field if isinstance(field, str) else None
            if not tokens_match(session["csrf_token"], given):
                log.warning("admin.csrf_rejected", path=request.path)
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
    app.middlewares.append(auth_middleware(handlers.sessions))
    app.router.add_get("/login", handlers.login_form)
    app.router.add_post("/login", handlers.login)
    app.router.add_post("/logout", handlers.logout)
