"""What staff accounts store: users (argon2id password hashes, TOTP second factor) and API
tokens (random; only their SHA-256 is kept). The `users` and `api_tokens` collections are
written only here; sessions and login counters are `sessions_store`."""

from __future__ import annotations

import asyncio
import uuid
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


async def create_user(
    db: Database,
    username: str,
    password: str,
    role: Role = Role.ADMIN,
    *,
    must_change_password: bool = False,
) -> None:
    """Create a user with an argon2id password hash."""
    if problem := rules.username_problem(username):
        raise UserError(problem)
    if problem := rules.password_problem(password, username):
        raise UserError(problem)
    password_hash = await asyncio.to_thread(_hasher.hash, password)
    try:
        await db.users.insert_one(
            {
                "username": username,
                "password_hash": password_hash,
                "must_change_password": must_change_password,
                "role": Role(role).value,
                "disabled": False,
                "mfa": None,
                "known_addresses": [],
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

    async def get(self, username: str) -> dict[str, Any] | None:
        """A user as pages may show it: no password hash, no MFA secret."""
        return await self._db.users.find_one(
            {"username": username}, {"password_hash": 0, "mfa.secret": 0}
        )

    async def mfa_secret(self, username: str) -> str | None:
        user = await self._db.users.find_one({"username": username}, {"mfa.secret": 1})
        return (user.get("mfa") or {}).get("secret") if user else None

    async def all(self) -> list[dict[str, Any]]:
        cursor = self._db.users.find({}, {"password_hash": 0, "mfa.secret": 0}).sort("username")
        return await cursor.to_list()

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

    async def set_password(self, username: str, password: str, *, must_change: bool) -> None:
        if problem := rules.password_problem(password, username):
            raise UserError(problem)
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        await self._changed(
            username,
            {
                "password_hash": password_hash,
                "must_change_password": must_change,
                "password_changed_at": utcnow(),
            },
        )

    async def reset_mfa(self, username: str) -> None:
        await self._changed(username, {"mfa": None})

    async def _changed(self, username: str, fields: dict[str, Any]) -> None:
        result = await self._db.users.update_one(
            {"username": username}, {"$set": {**fields, "updated_at": utcnow()}}
        )
        if result.matched_count == 0:
            raise UserError(f"User {username!r} does not exist.")

    async def check_password(self, username: str, password: str) -> dict[str, Any] | None:
        """The user, when `password` is theirs; None otherwise. A hash made with weaker
        parameters than today's is replaced on the way."""
        user = await self._db.users.find_one({"username": username})
        password_hash = user["password_hash"] if user else _DUMMY_HASH
        # argon2 is deliberately slow (tens of ms): keep it off the event loop.
        if not await asyncio.to_thread(_verify, password_hash, password) or user is None:
            return None
        if _hasher.check_needs_rehash(password_hash):
            stronger = await asyncio.to_thread(_hasher.hash, password)
            await self._db.users.update_one(
                {"_id": user["_id"], "password_hash": password_hash},
                {"$set": {"password_hash": stronger}},
            )
        del user["password_hash"]
        if user.get("mfa"):
            user["mfa"].pop("secret", None)
        return user

    async def remember_address(self, username: str, address: str, known: list[str]) -> None:
        """Keep the addresses the user last signed in from (the per-user login limit spares
        them, see `accounts_logic.login_limits`)."""
        kept = [address, *(a for a in known if a != address)][: rules.KNOWN_ADDRESSES_KEPT]
        await self._db.users.update_one(
            {"username": username}, {"$set": {"known_addresses": kept, "last_login_at": utcnow()}}
        )

    async def enable_mfa(
        self, username: str, secret: str, step: int, recovery_hashes: list[str]
    ) -> None:
        await self._changed(
            username,
            {
                "mfa": {
                    "secret": secret,
                    "last_step": step,
                    "recovery_hashes": recovery_hashes,
                    "enrolled_at": utcnow(),
                }
            },
        )

    async def use_mfa_step(self, username: str, step: int) -> bool:
        """Record `step` as used; False if it (or a later one) already was: a code is
        good once, even when two requests race with it."""
        result = await self._db.users.update_one(
            {"username": username, "mfa.last_step": {"$lt": step}},
            {"$set": {"mfa.last_step": step}},
        )
        return result.modified_count == 1

    async def use_recovery_code(self, username: str, code_hash: str) -> bool:
        """Spend one recovery code; False if it is not (or no longer) one of the user's."""
        result = await self._db.users.update_one(
            {"username": username, "mfa.recovery_hashes": code_hash},
            {"$pull": {"mfa.recovery_hashes": code_hash}},
        )
        return result.modified_count == 1


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
