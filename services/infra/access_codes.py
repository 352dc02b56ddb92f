"""The owner of `access_codes`: the one-time codes texted to patients whose lab's second check
is a code (`services.infra.second_check`), one document per report.

The gateway takes a send from the link's hourly allowance when the patient presses "Text me
a code" (`take_send`) and spends a code when it is entered (`use`); notify stores the code's
keyed hash just before texting it (`store`). Only the newest code of a report works, for
`second_check.CODE_TTL`, once, and only with the link it was texted for (a reissued link
starts afresh). Wrong codes count against the link's attempts like wrong dates of birth
(`Reports.take_check_attempt`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NotRequired, TypedDict, cast

from pymongo.errors import DuplicateKeyError

from services.infra import second_check
from services.infra.database import Database

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection


class AccessCodeDocument(TypedDict):
    """`access_codes`: a report's texted codes (see docs/data-model.md)."""

    _id: str  # the report id
    sends: list[datetime]  # when codes were asked for, within the last hour
    code_hash: NotRequired[str]  # keyed hash (`second_check.keyed_hash`) of the newest code
    link_hash: NotRequired[str]  # `access.token_hash` of the link the code was texted for
    request_id: NotRequired[str]  # the SendAccessCode that texted it
    expires_at: NotRequired[datetime]
    used_at: NotRequired[datetime | None]  # spent: a code opens the portal once


def access_codes(db: Database) -> AsyncCollection[AccessCodeDocument]:
    return cast("AsyncCollection[AccessCodeDocument]", db.access_codes)


class AccessCodes:
    def __init__(self, db: Database) -> None:
        self._collection = access_codes(db)

    async def take_send(self, report_id: str, now: datetime, per_hour: int) -> bool:
        """Count one code request against the report's hourly allowance; False (nothing
        counted) when `per_hour` were asked for in the last hour. Atomic: parallel presses
        cannot all pass while the count still looks low."""
        if per_hour < 1:
            return False
        window_start = now - second_check.CODE_SEND_WINDOW
        await self._collection.update_one(
            {"_id": report_id}, {"$pull": {"sends": {"$lte": window_start}}}
        )
        try:
            # No room (the per_hour-th entry exists): the filter misses, and the upsert's
            # insert of an existing _id fails.
            result = await self._collection.update_one(
                {"_id": report_id, f"sends.{per_hour - 1}": {"$exists": False}},
                {"$push": {"sends": now}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return result.modified_count == 1 or result.upserted_id is not None

    async def store(
        self, report_id: str, request_id: str, code_hash: str, link_hash: str, expires_at: datetime
    ) -> None:
        """The code about to be texted: it replaces any earlier one of the report."""
        await self._collection.update_one(
            {"_id": report_id},
            {
                "$set": {
                    "code_hash": code_hash,
                    "link_hash": link_hash,
                    "request_id": request_id,
                    "expires_at": expires_at,
                    "used_at": None,
                },
                "$setOnInsert": {"sends": []},
            },
            upsert=True,
        )

    async def use(self, report_id: str, code_hash: str, link_hash: str, now: datetime) -> bool:
        """Spend the report's code if `code_hash` is its hash, for this link, unexpired and
        unused; one update, so two tabs entering it at once open the portal once."""
        result = await self._collection.update_one(
            {
                "_id": report_id,
                "code_hash": code_hash,
                "link_hash": link_hash,
                "expires_at": {"$gt": now},
                "used_at": None,
            },
            {"$set": {"used_at": now}},
        )
        return result.modified_count == 1

    async def latest(self, report_id: str) -> AccessCodeDocument | None:
        return await self._collection.find_one({"_id": report_id})
