"""The steps of a login after the password, each on its own page: a second factor (a TOTP
code or a recovery code), a new password after an admin's reset, and setting up the second
factor where the role needs one. Each step moves the login on under a new session token."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from contracts.v1 import utcnow
from services.gateway import accounts_logic as rules
from services.gateway import mfa_logic as mfa
from services.gateway.accounts_logic import LoginStage
from services.gateway.accounts_store import UserError
from services.gateway.logic import tokens_match
from services.gateway.login import STAGE_PATHS, SignIn, form_text
from services.gateway.permissions import SESSION_ROLES, Role, role_of
from services.gateway.web import client_address, render


class LoginSteps(SignIn):
    async def _pending(
        self, request: web.Request, stage: LoginStage
    ) -> tuple[dict[str, Any], dict[str, Any], Role]:
        """The half-done login at `stage` this browser holds, its user and role; else back
        to the login page."""
        token = request.cookies.get(self.session_cookie)
        session = await self.sessions.pending(token, utcnow()) if token else None
        user = await self._users.get(session["username"]) if session else None
        role = role_of(user.get("role")) if user and not user.get("disabled") else None
        if session is None or user is None or role not in SESSION_ROLES:
            raise web.HTTPSeeOther("/login")
        if session["stage"] != stage.value:
            raise web.HTTPSeeOther(STAGE_PATHS.get(LoginStage(session["stage"]), "/login"))
        assert role is not None
        return session, user, role

    async def _posted(
        self, request: web.Request, stage: LoginStage
    ) -> tuple[dict[str, Any], dict[str, Any], Role, Any]:
        session, user, role = await self._pending(request, stage)
        form = await request.post()
        if not tokens_match(session["csrf_token"], form_text(form, "csrf_token")):
            raise web.HTTPForbidden(text="The form expired. Log in again.")
        return session, user, role, form

    async def _moved_on(
        self,
        request: web.Request,
        session: dict[str, Any],
        user: dict[str, Any],
        role: Role,
        stage: LoginStage,
    ) -> web.Response:
        token = await self.sessions.advance(session, stage, utcnow())
        if token is None:  # a parallel request took this step: start again
            raise web.HTTPSeeOther("/login")
        return await self._entered(request, user, role, stage, token, session.get("next", "/"))

    def _stage_page(
        self, request: web.Request, template: str, session: dict[str, Any], **context: Any
    ) -> web.Response:
        status = context.pop("status", 200)
        return render(
            request,
            template,
            {"login_csrf": session["csrf_token"], "error": "", **context},
            status=status,
        )

    async def password_form(self, request: web.Request) -> web.StreamResponse:
        session, _, _ = await self._pending(request, LoginStage.CHANGE_PASSWORD)
        return self._stage_page(request, "login_password.html", session)

    async def change_password(self, request: web.Request) -> web.StreamResponse:
        session, user, role, form = await self._posted(request, LoginStage.CHANGE_PASSWORD)
        new, again = form_text(form, "new_password"), form_text(form, "new_password_again")
        try:
            if new != again:
                raise UserError("The two new passwords differ.")
            await self._users.set_password(user["username"], new, must_change=False)
        except UserError as error:
            return self._stage_page(
                request, "login_password.html", session, error=str(error), status=400
            )
        await self._audited(request, user["username"], "user.password_changed", "success", role)
        user["must_change_password"] = False
        stage = self._next_stage(LoginStage.CHANGE_PASSWORD, user, role)
        return await self._moved_on(request, session, user, role, stage)

    async def mfa_form(self, request: web.Request) -> web.StreamResponse:
        session, _, _ = await self._pending(request, LoginStage.MFA_CODE)
        return self._stage_page(request, "login_mfa.html", session)

    async def check_mfa(self, request: web.Request) -> web.StreamResponse:
        session, user, role, form = await self._posted(request, LoginStage.MFA_CODE)
        code, username = form_text(form, "code"), user["username"]
        used = ""
        if mfa.looks_like_recovery_code(code):
            if await self._users.use_recovery_code(username, mfa.recovery_code_hash(code)):
                used = "recovery_code"
        else:
            secret = (await self._users.mfa_secret(username)) or ""
            step = mfa.matching_step(secret, code, utcnow(), user["mfa"].get("last_step"))
            if step is not None and await self._users.use_mfa_step(username, step):
                used = "code"
        if used:
            await self._audited(request, username, "mfa.succeeded", "success", role, {"with": used})
            stage = self._next_stage(LoginStage.MFA_CODE, user, role)
            return await self._moved_on(request, session, user, role, stage)
        await self._audited(request, username, "mfa.failed", "failure", role)
        # A wrong code counts as a failed login of this user from this address, and a
        # half-done login allows only a few: the password alone does not buy guesses.
        address = client_address(request)
        blocked = await self._throttle.take(rules.login_limits(username, address, False), utcnow())
        if blocked is not None or await self.sessions.code_failed(session) >= (
            rules.PENDING_LOGIN_MAX_CODES
        ):
            await self.sessions.delete(request.cookies.get(self.session_cookie, ""))
            return self._login_page(
                request, error="Too many wrong codes. Log in again.", status=429
            )
        return self._stage_page(
            request, "login_mfa.html", session, error="That code is not right.", status=401
        )

    async def mfa_setup_form(self, request: web.Request) -> web.StreamResponse:
        session, user, _ = await self._pending(request, LoginStage.MFA_SETUP)
        secret = session.get("mfa_secret")
        if not secret:  # made once per half-done login, so a reload shows the same one
            secret = mfa.new_secret()
            await self.sessions.remember(session, mfa_secret=secret)
        return self._setup_page(request, session, user, secret)

    def _setup_page(
        self,
        request: web.Request,
        session: dict[str, Any],
        user: dict[str, Any],
        secret: str,
        error: str = "",
    ) -> web.Response:
        uri = mfa.provisioning_uri(secret, user["username"], self._settings.lab_name)
        return self._stage_page(
            request,
            "login_mfa_setup.html",
            session,
            qr_svg=mfa.qr_svg(uri),
            secret=secret,
            error=error,
            status=401 if error else 200,
        )

    async def set_up_mfa(self, request: web.Request) -> web.StreamResponse:
        session, user, role, form = await self._posted(request, LoginStage.MFA_SETUP)
        secret = session.get("mfa_secret", "")
        step = (
            mfa.matching_step(secret, form_text(form, "code"), utcnow(), None) if secret else None
        )
        if step is None:
            await self._audited(request, user["username"], "mfa.setup_failed", "failure", role)
            error = "That code is not right: check the phone's clock and try the next one."
            return self._setup_page(request, session, user, secret, error)
        codes = mfa.new_recovery_codes()
        await self._users.enable_mfa(
            user["username"], secret, step, [mfa.recovery_code_hash(c) for c in codes]
        )
        await self._audited(request, user["username"], "mfa.enrolled", "success", role)
        token = await self.sessions.advance(session, LoginStage.RECOVERY_CODES, utcnow())
        if token is None:
            raise web.HTTPSeeOther("/login")
        fresh = await self.sessions.pending(token, utcnow())
        assert fresh is not None
        # Shown here, once: the codes are stored only as hashes.
        response = self._stage_page(request, "login_recovery_codes.html", fresh, codes=codes)
        self._set_session_cookie(response, token, signed_in=False)
        return response

    async def recovery_codes_seen(self, request: web.Request) -> web.StreamResponse:
        session, user, role, _ = await self._posted(request, LoginStage.RECOVERY_CODES)
        user["mfa"] = user.get("mfa") or {"enrolled": True}
        stage = self._next_stage(LoginStage.RECOVERY_CODES, user, role)
        return await self._moved_on(request, session, user, role, stage)
