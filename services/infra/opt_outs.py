"""SMS opt-out: the STOP and START keywords a patient may reply, and the `sms_opt_outs` store
(its owner) that notify reads before every SMS and the gateway's inbound webhooks write.

A number is stored as it arrives (E.164), whether or not we ever texted it: a STOP from a
number we never texted is honoured when we first would.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pymongo import ReturnDocument

from services.infra import documents
from services.infra.database import Database
from services.infra.documents import OptOutDocument

# The carriers' and Twilio's standard keywords (a reply that is exactly one of them).
STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_KEYWORDS = frozenset({"START", "UNSTOP"})
# Twilio's error when the recipient has opted out with Twilio itself.
PROVIDER_OPT_OUT_CODE = "21610"


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"


def keyword(body: str) -> Keyword | None:
    """What an inbound SMS asks: STOP, START, or nothing (any other text). Case, spaces and
    trailing punctuation do not matter; a keyword inside a sentence does not count."""
    word = body.strip().strip(".!").strip().upper()
    if word in STOP_KEYWORDS:
        return Keyword.STOP
    if word in START_KEYWORDS:
        return Keyword.START
    return None


def not_sent_reason(opt_out: OptOutDocument) -> str:
    """What the report says instead of sending: visible to staff, never silent."""
    return f"not sent: patient opted out (on {opt_out['at']:%Y-%m-%d})"


class OptOuts:
    def __init__(self, db: Database) -> None:
        self._collection = documents.sms_opt_outs(db)

    async def record(
        self, phone: str, kind: Keyword, now: datetime, *, source: str, word: str
    ) -> OptOutDocument:
        """Store a STOP (opted out) or START (opted back in) for `phone`."""
        found = await self._collection.find_one_and_update(
            {"_id": phone},
            {
                "$set": {
                    "opted_out": kind is Keyword.STOP,
                    "at": now,
                    "source": source,
                    "keyword": word,
                }
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert found is not None  # upserted
        return found

    async def opted_out(self, phone: str) -> OptOutDocument | None:
        """The number's opt-out while it stands; None when it may be texted."""
        return await self._collection.find_one({"_id": phone, "opted_out": True})
