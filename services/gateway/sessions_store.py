"""What signing in keeps: staff sessions (the cookie is random, only its SHA-256 is stored)
and the failed-login counters. The `sessions` and `login_throttle` collections are written
only here."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.gateway import accounts_logic as rules
from services.infra.database import Database
from services.infra.tokens import looks_like_token, new_token, token_hash


class LoginThrottle:
    """Failed-login counters per key (`accounts_logic.login_limits`), in fixed windows.

    An attempt is counted before its password is checked, in one atomic update per key, so
    that parallel guesses cannot all be checked while a count still looks low; a right
    password gives the attempt back.
    """

    def __init__(self, db: Database) -> None:
        self._collection = db.login_throttle

    async def take(self, limits: list[tuple[rules.Limit, str]], now: datetime) -> datetime | None:
        """Count one attempt against every key; None when it may go on, else until when
        the first blocked key is blocked (nothing more is counted then)."""
        for limit, key in limits:
            blocked_until = await self._take_one(limit, f"{limit.scope}:{key}", now)
            if blocked_until is not None:
                return blocked_until
        return None

    async def _take_one(self, limit: rules.Limit, key: str, now: datetime) -> datetime | None:
        with contextlib.suppress(DuplicateKeyError):  # a parallel attempt created it first
            await self._collection.update_one(
                {"_id": key},
                {"$setOnInsert": {"failures": 0, "window_start": now, "blocked_until": None}},
                upsert=True,
            )
        open_ = {"$or": [{"blocked_until": None}, {"blocked_until": {"$lte": now}}]}
        # A window that has passed starts again from zero.
        await self._collection.update_one(
            {"_id": key, "window_start": {"$lte": now - limit.window}, **open_},
            {"$set": {"failures": 0, "window_start": now, "blocked_until": None}},
        )
        expires = {"expires_at": now + limit.window + limit.block}  # TTL: gone when stale
        counted = await self._collection.find_one_and_update(
            {"_id": key, "failures": {"$lt": limit.failures - 1}, **open_},
            {"$inc": {"failures": 1}, "$set": expires},
        )
        if counted is not None:
            return None
        # The attempt that reaches the limit blocks the key; its password is still checked.
        reached = await self._collection.find_one_and_update(
            {"_id": key, "failures": {"$gte": limit.failures - 1}, **open_},
            {"$set": {"failures": 0, "window_start": now, "blocked_until": now + limit.block}},
        )
        if reached is not None:
            return None
        found = await self._collection.find_one({"_id": key})
        return found["blocked_until"] if found and found.get("blocked_until") else now

    async def succeeded(self, limits: list[tuple[rules.Limit, str]]) -> None:
        """A right password: the user's own counts start again, and the shared ones (an
        address, everyone) get this attempt back."""
        for limit, key in limits:
            if limit in (rules.USER_AT_ADDRESS, rules.USER):
                await self._collection.delete_one({"_id": f"{limit.scope}:{key}"})
            else:
                await self._collection.update_one(
                    {"_id": f"{limit.scope}:{key}", "failures": {"$gt": 0}},
                    {"$inc": {"failures": -1}},
                )


class Sessions:
    """Staff sessions: the cookie holds a random token, the database only its SHA-256.

    A login is a session in a stage (`accounts_logic.LoginStage`); only a DONE one is signed
    in. Every stage change issues a new token (the old one stops working), as does the login
    itself. A DONE session ends after `idle` without a request, or `lifetime` after login.
    """

    def __init__(self, db: Database, *, idle: timedelta, lifetime: timedelta) -> None:
        self._db = db
        self._idle = idle
        self._lifetime = lifetime

    async def start(
        self, username: str, stage: rules.LoginStage, now: datetime, fields: dict[str, Any]
    ) -> str:
        """A new session (or half-done login) for `username`; returns its token."""
        token = new_token()
        lifetime = self._lifetime if stage is rules.LoginStage.DONE else rules.PENDING_LOGIN_TTL
        await self._db.sessions.insert_one(
            {
                **fields,
                "token_hash": token_hash(token),
                "username": username,
                "stage": stage.value,
                "csrf_token": new_token(),
                "created_at": now,
                "last_seen_at": now,
                "expires_at": now + lifetime,
            }
        )
        return token

    async def get(self, token: str, now: datetime) -> dict[str, Any] | None:
        """The signed-in session of `token`, if it is live; marks it seen."""
        if not looks_like_token(token):
            return None
        session = await self._db.sessions.find_one(
            {
                "token_hash": token_hash(token),
                "stage": rules.LoginStage.DONE.value,
                "expires_at": {"$gt": now},
                "last_seen_at": {"$gt": now - self._idle},
            }
        )
        if session and session["last_seen_at"] <= now - rules.SESSION_TOUCH_EVERY:
            await self._db.sessions.update_one(
                {"_id": session["_id"]}, {"$set": {"last_seen_at": now}}
            )
        return session

    async def alive(self, session_id: Any, now: datetime) -> bool:
        """Whether a session read earlier is still signed in (for long responses: SSE)."""
        found = await self._db.sessions.count_documents(
            {
                "_id": session_id,
                "expires_at": {"$gt": now},
                "last_seen_at": {"$gt": now - self._idle},
            }
        )
        return found == 1

    async def pending(self, token: str, now: datetime) -> dict[str, Any] | None:
        """The half-done login of `token`, if it has not expired."""
        if not looks_like_token(token):
            return None
        return await self._db.sessions.find_one(
            {
                "token_hash": token_hash(token),
                "stage": {"$ne": rules.LoginStage.DONE.value},
                "expires_at": {"$gt": now},
            }
        )

    async def advance(
        self, session: dict[str, Any], stage: rules.LoginStage, now: datetime
    ) -> str | None:
        """Move a half-done login on to `stage` under a new token (the old one ends).
        None when a parallel request moved it first."""
        removed = await self._db.sessions.delete_one({"_id": session["_id"]})
        if removed.deleted_count != 1:
            return None
        kept = {k: session.get(k) for k in ("next", "client", "user_agent")}
        return await self.start(session["username"], stage, now, kept)

    async def remember(self, session: dict[str, Any], **fields: Any) -> None:
        """Keep something on a half-done login (the MFA secret being set up)."""
        await self._db.sessions.update_one({"_id": session["_id"]}, {"$set": fields})

    async def code_failed(self, session: dict[str, Any]) -> int:
        """Count a wrong MFA code on a half-done login; returns how many so far."""
        updated = await self._db.sessions.find_one_and_update(
            {"_id": session["_id"]},
            {"$inc": {"code_failures": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return int(updated["code_failures"]) if updated else rules.PENDING_LOGIN_MAX_CODES

    async def delete(self, token: str) -> None:
        await self._db.sessions.delete_one({"token_hash": token_hash(token)})

    async def end_all(self, username: str, but: Any = None) -> int:
        """End every session of a user (on a change of role, password, MFA, or disable),
        `but` one (the user's own, when they end their others)."""
        result = await self._db.sessions.delete_many({"username": username, "_id": {"$ne": but}})
        return result.deleted_count

    async def of_user(self, username: str, now: datetime) -> list[dict[str, Any]]:
        """The user's live sessions, newest first: where and when each signed in."""
        cursor = self._db.sessions.find(
            {
                "username": username,
                "stage": rules.LoginStage.DONE.value,
                "expires_at": {"$gt": now},
                "last_seen_at": {"$gt": now - self._idle},
            },
            {"created_at": 1, "last_seen_at": 1, "client": 1, "user_agent": 1},
        ).sort("created_at", -1)
        return await cursor.to_list()
