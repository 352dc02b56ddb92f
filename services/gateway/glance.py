"""The state at a glance (the dashboard's home, `GET /glance` for its live refresh,
`GET /api/v1/glance`, `resultflow glance`): today's and this week's reports by status in the
lab's time zone, upload-to-SMS p50/p95, the SMS delivery rate, and what waits for a person
(failed, held, stuck, dead letters, SMS of unknown outcome), with the last seven days drawn
as an SVG bar chart on the server (no script library, nothing from a CDN)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from contracts.v1 import ReportStatus, utcnow
from services.gateway.admin_api_models import GlanceView
from services.gateway.ops import Cached
from services.gateway.web import ok, render
from services.infra.database import Database
from services.infra.dead_letters import DeadLetters
from services.infra.documents import NotificationStatus
from services.infra.report_status import stuck_query
from services.infra.service import Resources

S = ReportStatus
DAYS = 7
GLANCE_SECONDS = 5.0
MOST_REPORTS = 50_000  # a week's reports read for the latencies and the chart, at most
# The chart's colour groups, in stacking order (the words are the legend: colour only repeats).
GROUPS: dict[str, frozenset[str]] = {
    "sent": frozenset({S.NOTIFIED, S.DELIVERED}),
    "in progress": frozenset({S.RECEIVED, S.RENDERED, S.CONVERTED, S.RELEASED}),
    "waiting": frozenset({S.NEEDS_ATTENTION, S.HELD}),
    "failed": frozenset({S.FAILED}),
    "other": frozenset({S.WITHDRAWN, S.SUPERSEDED}),
}
FINISHED_SMS = (
    NotificationStatus.DELIVERED,
    NotificationStatus.UNDELIVERED,
    NotificationStatus.FAILED,
)


@dataclass(frozen=True)
class Day:
    day: date
    groups: dict[str, int]  # GROUPS key -> reports made that day

    @property
    def total(self) -> int:
        return sum(self.groups.values())


@dataclass(frozen=True)
class Glance:
    today_since: datetime
    week_since: datetime
    today: dict[str, int]  # status -> reports made since today_since
    week: dict[str, int]
    upload_to_sms_p50: float | None  # seconds, over this week's texted reports
    upload_to_sms_p95: float | None
    delivery_rate: float | None  # delivered / SMS with a final outcome this week
    failed: int  # this week
    held: int  # now, whenever made
    needs_attention: int
    stuck: int
    dead_letters: int
    unknown_sms: int
    days: list[Day] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q` percentile (0 < q <= 100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def group_of(status: str) -> str:
    return next((name for name, members in GROUPS.items() if status in members), "other")


def local_starts(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime, date]:
    """The start of today and of this week (Monday) in the lab's zone, and today's date."""
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    start = datetime.combine(today, time(), zone)
    return start, datetime.combine(monday, time(), zone), today


def days_of(reports: Iterable[Mapping[str, Any]], last: date, zone: ZoneInfo) -> list[Day]:
    """Reports made on each of the `DAYS` days up to `last`, by chart group."""
    first = last - timedelta(days=DAYS - 1)
    counts: dict[date, Counter[str]] = {first + timedelta(days=i): Counter() for i in range(DAYS)}
    for report in reports:
        made = report["created_at"].astimezone(zone).date()
        if made in counts:
            counts[made][group_of(report["status"])] += 1
    return [Day(day, {g: counts[day][g] for g in GROUPS}) for day in sorted(counts)]


def upload_to_sms(report: Mapping[str, Any], uploaded_at: datetime | None) -> float | None:
    """Seconds from the upload (or the report's arrival) to its first SMS; None if none."""
    started = uploaded_at or report["created_at"]
    for step in report.get("history") or []:
        if step["status"] == S.NOTIFIED:
            return max(0.0, (step["at"] - started).total_seconds())
    return None


@dataclass(frozen=True)
class Bar:
    x: int
    segments: list[tuple[str, int, int, int]]  # group, y, height, count
    day: Day


def chart_bars(days: Sequence[Day], height: int = 120, width: int = 36, gap: int = 14) -> list[Bar]:
    """Where each day's stacked bar goes in an SVG `height` high (bottom up, tallest = full)."""
    tallest = max((d.total for d in days), default=0) or 1
    bars = []
    for index, day in enumerate(days):
        y, segments = height, []
        for group in GROUPS:
            count = day.groups.get(group, 0)
            if count:
                size = max(1, round(count / tallest * height))
                y -= size
                segments.append((group, y, size, count))
        bars.append(Bar(index * (width + gap), segments, day))
    return bars


def duration_words(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class GlanceQueries:
    def __init__(self, db: Database, time_zone: str) -> None:
        self._db = db
        self._zone = ZoneInfo(time_zone)

    async def _by_status(self, match: dict[str, Any]) -> dict[str, int]:
        cursor = await self._db.reports.aggregate(
            [{"$match": match}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        )
        return {row["_id"]: row["n"] async for row in cursor}

    async def now(self, now: datetime | None = None) -> Glance:
        now = now or utcnow()
        today_since, week_since, today = local_starts(now, self._zone)
        chart_since = datetime.combine(today - timedelta(days=DAYS - 1), time(), self._zone)
        since = min(week_since, chart_since)
        reports = await (
            self._db.reports.find(
                {"created_at": {"$gte": since}},
                {"status": 1, "created_at": 1, "history": 1, "batch_id": 1},
            )
            .limit(MOST_REPORTS)
            .to_list()
        )
        batch_ids = list({r["batch_id"] for r in reports if r.get("batch_id")})
        uploaded = {
            b["_id"]: b["uploaded_at"]
            async for b in self._db.batches.find({"_id": {"$in": batch_ids}}, {"uploaded_at": 1})
        }
        this_week = [r for r in reports if r["created_at"] >= week_since]
        latencies = [
            seconds
            for r in this_week
            if (seconds := upload_to_sms(r, uploaded.get(r.get("batch_id")))) is not None
        ]
        sms = self._db.notifications
        finished = await sms.count_documents(
            {"created_at": {"$gte": week_since}, "status": {"$in": list(FINISHED_SMS)}}
        )
        delivered = await sms.count_documents(
            {"created_at": {"$gte": week_since}, "status": NotificationStatus.DELIVERED}
        )
        week = Counter(r["status"] for r in this_week)
        today_counts = Counter(r["status"] for r in this_week if r["created_at"] >= today_since)
        waiting = await self._by_status({"status": {"$in": [S.HELD, S.NEEDS_ATTENTION]}})
        return Glance(
            today_since=today_since,
            week_since=week_since,
            today=dict(today_counts),
            week=dict(week),
            upload_to_sms_p50=percentile(latencies, 50),
            upload_to_sms_p95=percentile(latencies, 95),
            delivery_rate=delivered / finished if finished else None,
            failed=week.get(S.FAILED, 0),
            held=waiting.get(S.HELD, 0),
            needs_attention=waiting.get(S.NEEDS_ATTENTION, 0),
            stuck=await self._db.reports.count_documents(stuck_query(now)),
            dead_letters=sum((await DeadLetters(self._db).counts()).values()),
            unknown_sms=await sms.count_documents({"status": NotificationStatus.UNKNOWN}),
            days=days_of(reports, today, self._zone),
        )


def glance_context(glance: Glance) -> dict[str, Any]:
    """What `_glance.html` draws with."""
    return {"glance": glance, "chart": chart_bars, "durations": duration_words, "groups": GROUPS}


def cached_glance(resources: Resources) -> Cached[Glance]:
    """The glance the dashboard shows, counted at most once per `GLANCE_SECONDS` per
    gateway process however many pages are open (each refreshes every 15 s)."""
    queries = GlanceQueries(resources.db, resources.settings.time_zone)
    return Cached(queries.now, GLANCE_SECONDS)


class GlancePages:
    """`GET /glance`: the dashboard's glance alone, for its refresh every few seconds."""

    def __init__(self, glance: Cached[Glance]) -> None:
        self._glance = glance

    async def fragment(self, request: web.Request) -> web.StreamResponse:
        return render(request, "_glance.html", glance_context(await self._glance.get()))


class GlanceApi:
    def __init__(self, resources: Resources) -> None:
        self._queries = GlanceQueries(resources.db, resources.settings.time_zone)

    async def get(self, request: web.Request) -> web.StreamResponse:
        return ok(GlanceView.of(await self._queries.now()))


def setup_glance(app: web.Application, glance: Cached[Glance]) -> None:
    app.router.add_get("/glance", GlancePages(glance).fragment)
