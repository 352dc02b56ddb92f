"""The audit trail's hash chain, pure: how an entry is hashed and how a run of entries is
checked. No database imports; `services.infra.audit` stores and reads the entries.

Entry `seq` n carries `prev_hash` (the hash of entry n-1, "" for entry 1) and `hash`, the
SHA-256 of its canonical form: every stored field but `_id` and `hash`, as JSON with sorted
keys, instants as UTC ISO text to the millisecond (what MongoDB keeps; a naive instant read
back is UTC). Changing any field of an entry breaks its hash; recomputing that hash breaks
the next entry's `prev_hash`; deleting an entry leaves a gap in `seq`.

Entries written before the chain existed have no `seq` and are not covered. Deleting the
newest entries (the tail) leaves a chain that is intact: compare the head that
`resultflow audit verify` prints with one noted earlier to see that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = ""  # the prev_hash of entry 1
UNHASHED = frozenset({"_id", "hash"})


def to_millisecond(instant: datetime) -> datetime:
    """The instant as MongoDB will give it back: UTC, whole milliseconds."""
    instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_millisecond(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash is taken over: the same before and after a round trip."""
    fields = {key: value for key, value in entry.items() if key not in UNHASHED}
    text = json.dumps(_plain(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """The first entry at which the chain does not hold, and why."""

    seq: int | None  # None: an entry outside the chain
    at: Any
    action: str
    why: str

    def describe(self) -> str:
        place = f"entry {self.seq}" if self.seq is not None else "an entry without a seq"
        when = _plain(self.at) if isinstance(self.at, datetime) else "unknown time"
        return f"{place} ({when}, {self.action or 'no action'}): {self.why}"


class ChainCheck:
    """Feed it the chained entries in `seq` order; it answers the first break it sees."""

    def __init__(self) -> None:
        self.checked = 0
        self.head_hash = GENESIS
        self._expected = 1

    def feed(self, entry: Mapping[str, Any]) -> ChainBreak | None:
        seq = entry.get("seq")
        at, action = entry.get("at"), str(entry.get("action") or "")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return ChainBreak(None, at, action, f"its seq {seq!r} is not a number")
        if seq != self._expected:
            if seq < self._expected:
                return ChainBreak(seq, at, action, "its seq comes twice")
            missing = (
                f"entry {self._expected} before it is missing"
                if seq == self._expected + 1
                else f"entries {self._expected} to {seq - 1} before it are missing"
            )
            return ChainBreak(seq, at, action, f"{missing} (deleted?)")
        if entry.get("prev_hash") != self.head_hash:
            why = f"its prev_hash does not match the hash of entry {seq - 1} (was that changed?)"
            return ChainBreak(
                seq, at, action, why if seq > 1 else "the first entry has a prev_hash"
            )
        if entry.get("hash") != entry_hash(entry):
            return ChainBreak(seq, at, action, "its contents do not match its hash (changed)")
        self.head_hash = str(entry["hash"])
        self._expected += 1
        self.checked += 1
        return None
