"""Quiet hours arithmetic: when an SMS due now may go, in the lab's local hours, across
midnight and across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.notify.quiet_hours import local_time, parse, quiet_until

LONDON = "Europe/London"


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_an_empty_setting_means_no_quiet_hours_so_a_demo_at_night_still_sends() -> None:
    assert parse("", LONDON) is None
    assert quiet_until(utc(2026, 1, 1, 3, 0), None) is None


@pytest.mark.parametrize("window", ["21-08", "21:00", "25:00-08:00", "21:00-21:00", "9pm-8am"])
def test_a_malformed_window_is_refused_rather_than_texting_at_night(window: str) -> None:
    with pytest.raises(ValueError):
        parse(window, LONDON)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError):
        parse("21:00-08:00", "Europe/Atlantis")


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (utc(2026, 1, 15, 20, 59), None),  # just before
        (utc(2026, 1, 15, 21, 0), utc(2026, 1, 16, 8, 0)),  # from the start
        (utc(2026, 1, 15, 23, 30), utc(2026, 1, 16, 8, 0)),  # before midnight
        (utc(2026, 1, 16, 3, 0), utc(2026, 1, 16, 8, 0)),  # after midnight
        (utc(2026, 1, 16, 7, 59), utc(2026, 1, 16, 8, 0)),
        (utc(2026, 1, 16, 8, 0), None),  # the end is not quiet any more
        (utc(2026, 1, 16, 12, 0), None),
    ],
)
def test_a_window_across_midnight_holds_sms_until_its_end(
    now: datetime, until: datetime | None
) -> None:
    assert quiet_until(now, parse("21:00-08:00", LONDON)) == until


def test_a_window_within_one_day_holds_only_inside_it() -> None:
    lunch = parse("12:00-13:30", "UTC")
    assert quiet_until(utc(2026, 5, 1, 11, 59), lunch) is None
    assert quiet_until(utc(2026, 5, 1, 12, 10), lunch) == utc(2026, 5, 1, 13, 30)
    assert quiet_until(utc(2026, 5, 1, 13, 30), lunch) is None


def test_hours_are_the_labs_local_hours_in_summer_time() -> None:
    quiet = parse("21:00-08:00", LONDON)
    # 20:30 UTC is 21:30 BST: quiet, until 08:00 BST = 07:00 UTC.
    assert quiet_until(utc(2026, 7, 1, 20, 30), quiet) == utc(2026, 7, 2, 7, 0)
    # 07:30 UTC is 08:30 BST: not quiet any more.
    assert quiet_until(utc(2026, 7, 2, 7, 30), quiet) is None


def test_the_night_the_clocks_go_forward_ends_at_eight_on_the_new_clock() -> None:
    # 29 March 2026: 01:00 GMT becomes 02:00 BST. The night is an hour shorter.
    quiet = parse("21:00-08:00", LONDON)
    assert quiet_until(utc(2026, 3, 28, 22, 0), quiet) == utc(2026, 3, 29, 7, 0)


def test_the_night_the_clocks_go_back_ends_at_eight_on_the_new_clock() -> None:
    # 25 October 2026: 02:00 BST becomes 01:00 GMT. The night is an hour longer.
    quiet = parse("21:00-08:00", LONDON)
    assert quiet_until(utc(2026, 10, 24, 20, 30), quiet) == utc(2026, 10, 25, 8, 0)
    assert quiet_until(utc(2026, 10, 25, 7, 30), quiet) == utc(2026, 10, 25, 8, 0)


def test_an_end_the_clocks_skip_ends_the_window_when_they_jump() -> None:
    # 01:30 never happens on 29 March 2026 in London: the window ends at the jump, 02:00 BST.
    quiet = parse("23:00-01:30", LONDON)
    assert quiet_until(utc(2026, 3, 29, 0, 45), quiet) == utc(2026, 3, 29, 1, 0)


def test_an_end_the_clocks_pass_twice_ends_the_window_the_first_time() -> None:
    # 01:30 happens twice on 25 October 2026 in London: first as BST (00:30 UTC).
    quiet = parse("23:00-01:30", LONDON)
    assert quiet_until(utc(2026, 10, 24, 23, 0), quiet) == utc(2026, 10, 25, 0, 30)


def test_a_window_in_a_zone_west_of_utc_follows_its_own_clock_change() -> None:
    # New York changes on 8 March 2026 (02:00 EST -> 03:00 EDT).
    quiet = parse("22:00-07:00", "America/New_York")
    assert quiet_until(utc(2026, 3, 8, 4, 0), quiet) == utc(2026, 3, 8, 11, 0)  # 07:00 EDT
    assert quiet_until(utc(2026, 3, 7, 4, 0), quiet) == utc(2026, 3, 7, 12, 0)  # 07:00 EST


def test_a_local_time_names_its_zone() -> None:
    quiet = parse("21:00-08:00", LONDON)
    assert quiet is not None
    assert local_time(utc(2026, 7, 2, 7, 0), quiet.zone) == "08:00 BST"
    assert local_time(utc(2026, 1, 2, 8, 0), quiet.zone) == "08:00 GMT"
