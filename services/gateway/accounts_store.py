"""What staff accounts store: users (argon2id password hashes), browser sessions and API
tokens; tokens and session cookies are random and only their SHA-256 is kept. The `users`,
`sessions`, `login_failures` and `api_tokens` collections are written only here."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.errors import DuplicateKeyError

from contracts.v1 import utcnow
from services.gateway import accounts_logic as rules
from services.gateway.permissions import Role, role_of
from services.infra.database import Database
from services.infra.tokens import looks_like_token, new_token, token_hash

# argon2-cffi's default type is argon2id.
_hasher = PasswordHasher()
# Verified against when the username is unknown, so both cases take as long.
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


class UserError(ValueError):
    """A user cannot be created as asked; the text says why."""


async def create_user(db: Database, username: str, password: str, role: Role = Role.ADMIN) -> None:
    """Create a user with an argon2id password hash (used by `resultflow users create`)."""
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
                "role": Role(role).value,
                "disabled": False,
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

    async def role_of(self, username: str) -> Role | None:
        """The role of an enabled user; None for an unknown or disabled one (it may do
        nothing, whatever session or token it still holds)."""
        user = await self._db.users.find_one({"username": username}, {"role": 1, "disabled": 1})
        if user is None or user.get("disabled"):
            return None
        return role_of(user.get("role"))

    async def set_role(self, username: str, role: Role) -> None:
        await self._changed(username, {"role": Role(role).value})

    async def set_disabled(self, username: str, disabled: bool) -> None:
        await self._changed(username, {"disabled": disabled})

    async def _changed(self, username: str, fields: dict[str, Any]) -> None:
        result = await self._db.users.update_one(
            {"username": username}, {"$set": {**fields, "updated_at": utcnow()}}
        )
        if result.matched_count == 0:
            raise UserError(f"User {username!r} does not exist.")

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


class ApiTokens:
    """Bearer tokens for the admin API, one or more per user, revocable."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, username: str, name: str = "") -> tuple[str, str]:
        """A new token for an existing user: (token id, the token, shown once)."""
        if await self._db.users.find_one({"username": username}) is None:
            raise UserError(f"User {username!r} does not exist.")
        token, token_id = new_token(), uuid.uuid4().hex[:12]
        await self._db.api_tokens.insert_one(
            {
                "_id": token_id,
                "token_hash": token_hash(token),
                "username": username,
                "name": name,
                "created_at": utcnow(),
                "revoked_at": None,
            }
        )
        return token_id, token

    async def user_of(self, token: str) -> str | None:
        """The user a live token belongs to; None for an unknown or revoked one."""
        if not looks_like_token(token):
            return None
        found = await self._db.api_tokens.find_one(
            {"token_hash": token_hash(token), "revoked_at": None}
        )
        return str(found["username"]) if found else None

    async def revoke(self, token_id: str) -> bool:
        result = await self._db.api_tokens.update_one(
            {"_id": token_id, "revoked_at": None}, {"$set": {"revoked_at": utcnow()}}
        )
        return result.modified_count == 1

    async def list(self, username: str | None = None) -> list[dict[str, Any]]:
        query = {"username": username} if username else {}
        cursor = self._db.api_tokens.find(query, {"token_hash": 0}).sort("created_at", 1)
        return await cursor.to_list()
