"""Staff pages show times on the lab's clock (`RESULTFLOW_TIME_ZONE`), with UTC beside them."""

from __future__ import annotations

from datetime import UTC, datetime

from services.gateway.web import format_datetime

SUMMER = datetime(2026, 7, 1, 8, 30, 5, tzinfo=UTC)
WINTER = datetime(2026, 1, 15, 8, 30, 5, tzinfo=UTC)


def test_a_lab_on_utc_sees_utc_times_as_before() -> None:
    assert format_datetime(SUMMER) == "2026-07-01 08:30 UTC"
    assert format_datetime(SUMMER, seconds=True) == "2026-07-01 08:30:05 UTC"


def test_a_lab_elsewhere_sees_its_local_time_and_zone_with_utc_beside_it() -> None:
    assert format_datetime(SUMMER, zone="Europe/London") == "2026-07-01 09:30 BST (08:30 UTC)"
    assert format_datetime(WINTER, zone="Europe/London") == "2026-01-15 08:30 GMT (08:30 UTC)"
    assert (
        format_datetime(WINTER, seconds=True, zone="Africa/Nairobi")
        == "2026-01-15 11:30:05 EAT (08:30:05 UTC)"
    )


def test_a_local_date_can_differ_from_the_utc_date() -> None:
    late = datetime(2026, 1, 15, 23, 30, tzinfo=UTC)
    assert format_datetime(late, zone="Asia/Tokyo") == "2026-01-16 08:30 JST (23:30 UTC)"


def test_a_missing_time_shows_nothing() -> None:
    assert format_datetime(None, zone="Europe/London") == ""
