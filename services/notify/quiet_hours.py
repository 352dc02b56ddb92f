"""Quiet hours: the local hours of the lab's time zone in which no SMS is sent
(`RESULTFLOW_QUIET_HOURS`, e.g. "21:00-08:00", in `RESULTFLOW_TIME_ZONE`).

Pure arithmetic on wall-clock times; no broker or database here. Across a daylight-saving
change the window stays in local hours: "08:00" is 08:00 on the patient's clock, whatever
the UTC offset that day. An end time the clocks skip (spring forward) ends the window the
moment the clocks jump past it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class QuietHours:
    start: time  # local wall-clock time the window opens
    end: time  # local wall-clock time it closes (the next day when before `start`)
    zone: ZoneInfo

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone.key}"


def parse(window: str, zone_name: str) -> QuietHours | None:
    """The quiet hours of a setting ("21:00-08:00"); None when empty (off). A malformed
    window or an unknown time zone raises ValueError: a deployment must not silently text
    patients at night because of a typo."""
    if not window.strip():
        return None
    match = _WINDOW.match(window)
    if match is None:
        raise ValueError(f"quiet hours must look like 21:00-08:00, not {window!r}")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    try:
        start, end = time(h1, m1), time(h2, m2)
        zone = ZoneInfo(zone_name)
    except (ValueError, KeyError) as error:
        raise ValueError(f"bad quiet hours or time zone: {error}") from error
    if start == end:
        raise ValueError("quiet hours must not start and end at the same time")
    return QuietHours(start, end, zone)


def quiet_until(now: datetime, quiet: QuietHours | None) -> datetime | None:
    """When (UTC) the quiet hours that `now` falls in end; None when SMS may go now."""
    if quiet is None:
        return None
    local = now.astimezone(quiet.zone)
    clock = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:  # within one day, e.g. 13:00-14:00
        inside = quiet.start <= clock < quiet.end
        end_day = local.date()
    else:  # across midnight, e.g. 21:00-08:00
        inside = clock >= quiet.start or clock < quiet.end
        end_day = local.date() + timedelta(days=1) if clock >= quiet.start else local.date()
    if not inside:
        return None
    return _first_instant_at(end_day, quiet.end, quiet.zone)


def _first_instant_at(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first UTC instant at which the local clock reads `wall` on `day` or later: for a
    time the clocks go through twice (autumn), the first; for one they skip (spring), the
    moment of the jump."""
    target = datetime.combine(day, wall)
    first = target.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == target:
        # Exists; with fold=0 an ambiguous time is its first occurrence.
        return first
    # Skipped: fold=1 reads it with the offset after the jump (an instant before the jump),
    # fold=0 with the offset before (an instant after). The jump lies between: find it.
    low, high = sorted(int(target.replace(tzinfo=zone, fold=fold).timestamp()) for fold in (0, 1))
    while high - low > 1:  # whole seconds; `high` always reads `wall` or later
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def local_time(value: datetime, zone: ZoneInfo) -> str:
    """An instant on the lab's clock, with the zone's abbreviation ("08:00 BST")."""
    return value.astimezone(zone).strftime("%H:%M %Z")
