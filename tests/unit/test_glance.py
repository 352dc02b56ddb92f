"""The glance's arithmetic: percentiles, the lab's day and week, the chart's bars."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.gateway.glance import (
    Day,
    chart_bars,
    days_of,
    duration_words,
    local_starts,
    percentile,
    upload_to_sms,
)


def test_percentiles_are_nearest_rank_and_none_without_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) is None


def test_today_and_this_week_start_at_local_midnight_and_monday_in_the_labs_zone() -> None:
    nairobi = ZoneInfo("Africa/Nairobi")  # UTC+3: 22:30 UTC on Sunday is Monday there
    today, week, day = local_starts(datetime(2026, 11, 29, 22, 30, tzinfo=UTC), nairobi)
    assert day == date(2026, 11, 30)
    assert today == week == datetime(2026, 11, 30, tzinfo=nairobi)
    assert today.astimezone(UTC) == datetime(2026, 11, 29, 21, 0, tzinfo=UTC)
    _, week, _ = local_starts(datetime(2026, 11, 26, 12, tzinfo=UTC), nairobi)
    assert week.date() == date(2026, 11, 23)  # Thursday's week began on Monday


def test_reports_are_counted_on_the_local_day_they_were_made_by_outcome() -> None:
    london = ZoneInfo("Europe/London")
    made = datetime(2026, 11, 26, 9, tzinfo=UTC)
    reports = [
        {"created_at": made, "status": "delivered"},
        {"created_at": made, "status": "notified"},
        {"created_at": made, "status": "held"},
        {"created_at": made - timedelta(days=2), "status": "failed"},
        {"created_at": made - timedelta(days=9), "status": "failed"},  # before the chart
    ]
    days = days_of(reports, date(2026, 11, 26), london)
    assert days[0].day == date(2026, 11, 20) and len(days) == 7
    assert days[-1].groups == {"sent": 2, "in progress": 0, "waiting": 1, "failed": 0, "other": 0}
    assert days[-3].groups["failed"] == 1 and sum(d.total for d in days) == 4


def test_upload_to_sms_runs_from_the_upload_to_the_first_sms() -> None:
    uploaded = datetime(2026, 11, 26, 9, tzinfo=UTC)
    report = {
        "created_at": uploaded + timedelta(seconds=5),
        "history": [
            {"status": "received", "at": uploaded + timedelta(seconds=5)},
            {"status": "notified", "at": uploaded + timedelta(seconds=42)},
            {"status": "notified", "at": uploaded + timedelta(hours=5)},  # a resend
        ],
    }
    assert upload_to_sms(report, uploaded) == 42.0
    assert upload_to_sms(report, None) == 37.0  # an LIS report: from its arrival
    assert upload_to_sms({"created_at": uploaded, "history": []}, uploaded) is None
    assert [duration_words(s) for s in (None, 42, 600, 7200)] == ["—", "42 s", "10 min", "2.0 h"]


def test_the_busiest_day_fills_the_chart_and_every_count_stays_visible() -> None:
    days = [
        Day(date(2026, 11, 25), {"sent": 90, "failed": 10}),
        Day(date(2026, 11, 26), {"sent": 1}),
        Day(date(2026, 11, 27), {}),
    ]
    busiest, quiet, empty = chart_bars(days, height=100)
    assert [(g, y, h) for g, y, h, _ in busiest.segments] == [("sent", 10, 90), ("failed", 0, 10)]
    assert quiet.segments == [("sent", 99, 1, 1)]  # one report is still a visible bar
    assert empty.segments == [] and empty.x > quiet.x > busiest.x
