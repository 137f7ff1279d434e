"""Quiet hours and maintenance windows (`mute:`): parsing and `is_muted`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from watcher.core.mute import AbsoluteWindow, WeeklyWindow, is_muted, parse_mute


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# 2026-11-21 is a Saturday; 2026-11-23 a Monday.
@pytest.mark.parametrize(
    ("spec", "at", "muted"),
    [
        ("Sat 00:00-06:00 UTC", "2026-11-21T00:00", True),
        ("Sat 00:00-06:00 UTC", "2026-11-21T05:59", True),
        ("Sat 00:00-06:00 UTC", "2026-11-21T06:00", False),  # the end is exclusive
        ("Sat 00:00-06:00 UTC", "2026-11-20T23:59", False),
        ("Sat 00:00-06:00 UTC", "2026-11-28T03:00", True),  # every week
        # Berlin is UTC+1 in November: Sat 00:00-06:00 local is Fri 23:00-Sat 05:00 UTC.
        ("Sat 00:00-06:00 Europe/Berlin", "2026-11-20T23:30", True),
        ("Sat 00:00-06:00 Europe/Berlin", "2026-11-21T05:30", False),
        # A window past midnight belongs to the day it starts on.
        ("Mon-Fri 22:00-07:00 UTC", "2026-11-23T22:00", True),  # Mon evening
        ("Mon-Fri 22:00-07:00 UTC", "2026-11-24T06:59", True),  # Tue morning
        ("Mon-Fri 22:00-07:00 UTC", "2026-11-23T06:00", False),  # Mon morning: Sun not listed
        ("Mon-Fri 22:00-07:00 UTC", "2026-11-21T06:00", True),  # Sat morning: from Fri
        ("Mon-Fri 22:00-07:00 UTC", "2026-11-21T22:00", False),  # Sat evening
        ("Mon-Fri 22:00-07:00 UTC", "2026-11-23T12:00", False),
        ("sat,SUN 00:00-24:00 UTC", "2026-11-22T23:59", True),
        ("Saturday,Sunday 00:00-24:00 UTC", "2026-11-23T00:00", False),
        ("Fri-Mon 12:00-13:00 UTC", "2026-11-22T12:30", True),  # a range across the week end
        ("Fri-Mon 12:00-13:00 UTC", "2026-11-25T12:30", False),  # Wednesday
        ("22:00-02:00 UTC", "2026-11-25T01:00", True),  # no days: every day
        ("2026-12-24 00:00-2026-12-27 00:00 UTC", "2026-12-24T00:00", True),
        ("2026-12-24 00:00-2026-12-27 00:00 UTC", "2026-12-26T23:59", True),
        ("2026-12-24 00:00-2026-12-27 00:00 UTC", "2026-12-27T00:00", False),
        ("2026-12-24 00:00 - 2026-12-27 00:00 Europe/Berlin", "2026-12-23T23:30", True),
    ],
)
def test_is_muted(spec: str, at: str, muted: bool) -> None:
    assert is_muted([spec], utc(at)) is muted


def test_daylight_saving_follows_the_wall_clock() -> None:
    spec = "Sun 01:00-04:00 Europe/Berlin"
    # 2026-03-29: clocks go 02:00 -> 03:00 CET -> CEST. 01:30 UTC is 03:30 CEST.
    assert is_muted([spec], utc("2026-03-29T01:30"))
    assert not is_muted([spec], utc("2026-03-29T02:00"))  # 04:00 CEST
    # A winter Sunday: 01:00-04:00 CET is 00:00-03:00 UTC.
    assert is_muted([spec], utc("2026-01-04T02:30"))


def test_any_spec_mutes_and_none_is_never_muted() -> None:
    specs = ["Sat 00:00-01:00 UTC", "Mon 00:00-01:00 UTC"]
    assert is_muted(specs, utc("2026-11-23T00:30"))
    assert not is_muted(specs, utc("2026-11-24T00:30"))
    assert not is_muted([], utc("2026-11-24T00:30"))
    assert is_muted([parse_mute("Mon 00:00-01:00 UTC")], utc("2026-11-23T00:30"))


def test_parsed_forms() -> None:
    assert parse_mute("Mon-Wed,Fri 09:00-17:30 UTC") == WeeklyWindow(
        frozenset({0, 1, 2, 4}), 9 * 60, 17 * 60 + 30, UTC
    )
    assert parse_mute("2026-12-24 00:00-2026-12-27 00:00 UTC") == AbsoluteWindow(
        utc("2026-12-24T00:00"), utc("2026-12-27T00:00")
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("weekends", "is not a mute window; use e.g."),
        ("Sat 25:00-06:00 UTC", "25:00 is not a time of day (00:00-23:59)"),
        ("Sat 00:00-24:30 UTC", "24:30 is not a time of day (00:00-24:00)"),
        ("Sat 00:60-01:00 UTC", "00:60 is not a time of day"),
        ("Sat 24:00-01:00 UTC", "24:00 is not a time of day (00:00-23:59)"),
        ("Caturday 00:00-06:00 UTC", "'Caturday' is not a day"),
        ("Mon-Fryday 00:00-06:00 UTC", "'Fryday' is not a day"),
        ("Sat 00:00-06:00 Mars/Base", "unknown time zone 'Mars/Base'"),
        ("Sat 00:00-06:00 ../etc/passwd", "unknown time zone"),
        ("Sat 00:00-06:00", "add a time zone"),
        ("Sat 06:00-06:00 UTC", "the window is empty"),
        ("2026-12-27 00:00-2026-12-24 00:00 UTC", "the end must be after the start"),
        ("2026-02-30 00:00-2026-03-01 00:00 UTC", "2026-02-30 is not a date"),
    ],
)
def test_invalid_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_mute(spec)
