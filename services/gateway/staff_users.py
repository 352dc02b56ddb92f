"""Managing staff accounts: create, change role, disable or enable, reset a password or the
second factor. The one place these changes are made, for the dashboard, the admin API and
`resultflow users`; each is audited and ends the user's sessions, so that what changed
applies at once and a reset account is signed in again from scratch."""

from __future__ import annotations

import secrets
from typing import Any

from services.gateway.accounts_store import UserError, Users, create_user
from services.gateway.permissions import Role
from services.gateway.sessions_store import Sessions
from services.infra.audit import Audit
from services.infra.database import Database

USER_ACTIONS = ("disable", "enable", "reset-password", "reset-mfa", "end-sessions")


def temporary_password() -> str:
    """A one-time password an admin hands over; the user must change it at next login."""
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


class StaffUsers:
    def __init__(self, db: Database, sessions: Sessions) -> None:
        self._db = db
        self._users = Users(db)
        self._sessions = sessions
        self._audit = Audit(db)

    async def list(self) -> list[dict[str, Any]]:
        return await self._users.all()

    async def create(
        self, actor: str, actor_role: str, username: str, role: Role, password: str = ""
    ) -> str:
        """Create a user; returns the temporary password made for them when none is given
        (they change it at first login), else ""."""
        made = "" if password else temporary_password()
        await create_user(
            self._db, username, password or made, role, must_change_password=bool(made)
        )
        await self._audited(actor, actor_role, "user.created", username, {"role": role.value})
        return made

    async def set_role(self, actor: str, actor_role: str, username: str, role: Role) -> None:
        if role is not Role.ADMIN:
            await self._keep_an_admin(username)
        await self._users.set_role(username, role)
        await self._ended(actor, actor_role, "user.role_changed", username, {"role": role.value})

    async def act(self, actor: str, actor_role: str, username: str, action: str) -> str:
        """One of `USER_ACTIONS`; returns the temporary password of a reset-password."""
        made = ""
        if action == "disable":
            await self._keep_an_admin(username)
            await self._users.set_disabled(username, True)
        elif action == "enable":
            await self._users.set_disabled(username, False)
        elif action == "reset-password":
            made = temporary_password()
            await self._users.set_password(username, made, must_change=True)
        elif action == "reset-mfa":
            await self._users.reset_mfa(username)
        elif action == "end-sessions":
            if await self._users.get(username) is None:
                raise UserError(f"User {username!r} does not exist.")
        else:
            raise UserError(f"No such action {action!r}.")
        event = {
            "disable": "user.disabled",
            "enable": "user.enabled",
            "end-sessions": "user.sessions_ended",
        }.get(action, f"user.{action.replace('-', '_')}")
        await self._ended(actor, actor_role, event, username, {})
        return made

    async def _keep_an_admin(self, username: str) -> None:
        """Refuse to demote or disable the last enabled admin: nobody could manage users."""
        others = await self._db.users.count_documents(
            {"role": Role.ADMIN.value, "disabled": {"$ne": True}, "username": {"$ne": username}}
        )
        if others == 0 and await self._users.role_of(username) is Role.ADMIN:
            raise UserError(f"{username} is the last admin: make another admin first.")

    async def _ended(
        self, actor: str, actor_role: str, action: str, username: str, detail: dict[str, Any]
    ) -> None:
        ended = await self._sessions.end_all(username)
        await self._audited(
            actor, actor_role, action, username, {**detail, "sessions_ended": ended}
        )

    async def _audited(
        self, actor: str, actor_role: str, action: str, username: str, detail: dict[str, Any]
    ) -> None:
        await self._audit.write(
            actor, action, None, {"username": username, **detail}, role=actor_role, object=username
        )
