"""The dashboard's staff accounts page (admins): who may sign in, with which role, and the
resets an admin does for a colleague. The changes themselves are `staff_users.StaffUsers`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.gateway.accounts_store import UserError
from services.gateway.admin_api_models import (
    NewUser,
    UserActionBody,
    UserChanged,
    UserList,
    UserView,
)
from services.gateway.login import form_text, session_lifetimes
from services.gateway.permissions import SESSION_ROLES, Role, role_of
from services.gateway.sessions_store import Sessions
from services.gateway.staff_users import USER_ACTIONS, StaffUsers
from services.gateway.web import ROLE, USER, body, json_error, ok, render
from services.infra.audit import staff
from services.infra.service import Resources

PAGE_ACTIONS = ("set-role", *USER_ACTIONS)
DONE = {
    "set-role": "{username} is now {role}.",
    "disable": "{username} can no longer sign in; their sessions and API tokens stopped working.",
    "enable": "{username} can sign in again.",
    "reset-password": "{username} has a temporary password (below); they choose a new one "
    "when they next sign in.",
    "reset-mfa": "{username}'s second factor was removed; they set up a new one when they "
    "next sign in.",
    "end-sessions": "{username} was signed out everywhere.",
}


class UserPages:
    def __init__(self, resources: Resources) -> None:
        sessions = Sessions(resources.db, **session_lifetimes(resources.settings))
        self._users = StaffUsers(resources.db, sessions)

    async def _page(self, request: web.Request, status: int = 200, **context: Any) -> web.Response:
        return render(
            request,
            "users.html",
            {
                "users": await self._users.list(),
                "roles": [role.value for role in Role],
                "session_roles": {role.value for role in SESSION_ROLES},
                "message": "",
                "error": "",
                "temporary_password": "",
                **context,
            },
            status=status,
        )

    async def list(self, request: web.Request) -> web.StreamResponse:
        return await self._page(request)

    async def create(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        username = form_text(form, "username").strip()
        role = role_of(form_text(form, "role"))
        try:
            if role is None:
                raise UserError("Choose a role.")
            made = await self._users.create(staff(request[USER]), request[ROLE], username, role)
        except UserError as error:
            return await self._page(request, 400, error=str(error))
        message = f"{username} was created as {role.value}; they choose a new password when "
        message += "they first sign in."
        return await self._page(request, message=message, temporary_password=made)

    async def act(self, request: web.Request) -> web.StreamResponse:
        username, action = request.match_info["username"], request.match_info["action"]
        form = await request.post()
        actor = staff(request[USER])
        made, role = "", role_of(form_text(form, "role"))
        try:
            if action == "set-role":
                if role is None:
                    raise UserError("Choose a role.")
                await self._users.set_role(actor, request[ROLE], username, role)
            else:
                made = await self._users.act(actor, request[ROLE], username, action)
        except UserError as error:
            return await self._page(request, 409, error=str(error))
        message = DONE[action].format(username=username, role=role.value if role else "")
        if username == request[USER]:
            message += " You changed your own account: sign in again."
        return await self._page(request, message=message, temporary_password=made)


class UserApi:
    """The admin API's user operations (`api_routes.OPERATIONS` names them `users.<method>`)."""

    def __init__(self, resources: Resources) -> None:
        sessions = Sessions(resources.db, **session_lifetimes(resources.settings))
        self._users = StaffUsers(resources.db, sessions)

    async def list_users(self, request: web.Request) -> web.StreamResponse:
        users = await self._users.list()
        return ok(UserList(items=[UserView.of(user) for user in users]))

    async def create_user(self, request: web.Request) -> web.StreamResponse:
        new: NewUser = await body(request, NewUser)
        try:
            made = await self._users.create(
                staff(request[USER]), request[ROLE], new.username, new.role
            )
        except UserError as error:
            return json_error(409, "conflict", str(error))
        return ok(UserChanged(username=new.username, temporary_password=made), status=201)

    async def user_action(self, request: web.Request) -> web.StreamResponse:
        wanted: UserActionBody = await body(request, UserActionBody)
        username, action = request.match_info["username"], request.match_info["action"]
        actor, made = staff(request[USER]), ""
        try:
            if action == "set-role":
                if wanted.role is None:
                    return json_error(400, "invalid", "Send the new `role`.")
                await self._users.set_role(actor, request[ROLE], username, wanted.role)
            else:
                made = await self._users.act(actor, request[ROLE], username, action)
        except UserError as error:
            status = 404 if "does not exist" in str(error) else 409
            return json_error(status, "not_found" if status == 404 else "conflict", str(error))
        return ok(UserChanged(username=username, temporary_password=made or None))


def setup_users(app: web.Application, resources: Resources) -> None:
    pages = UserPages(resources)
    app.router.add_get("/users", pages.list)
    app.router.add_post("/users", pages.create)
    app.router.add_post(f"/users/{{username}}/{{action:{'|'.join(PAGE_ACTIONS)}}}", pages.act)
