"""Quiet hours and maintenance windows: `mute:` specs of rules and routes. Pure.

Three forms, each ending in a time zone (an IANA name such as `Europe/Berlin`, or `UTC`):

- `Sat 00:00-06:00 Europe/Berlin`: weekly; days are `Mon`..`Sun`, lists (`Sat,Sun`)
  and ranges (`Mon-Fri`, `Fri-Mon`); without days, every day.
- `Mon-Fri 22:00-07:00 UTC`: an end before the start runs past midnight; the days name
  the day the window *starts* (this one covers Friday 22:00 to Saturday 07:00).
- `2026-12-24 00:00-2026-12-27 00:00 UTC`: one absolute window, start to end.

Times are wall-clock times in the zone (so a window follows daylight saving time);
`24:00` ends a window at midnight. Starts are inclusive, ends exclusive.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EXAMPLES = (
    "Sat 00:00-06:00 Europe/Berlin",
    "Mon-Fri 22:00-07:00 UTC",
    "2026-12-24 00:00-2026-12-27 00:00 UTC",
)
_HINT = "use e.g. " + ", ".join(f'"{e}"' for e in EXAMPLES)
_TIME = r"\d{1,2}:\d{2}"
_DATE = r"\d{4}-\d{2}-\d{2}"
_ABSOLUTE = re.compile(
    rf"(?P<d1>{_DATE})[ T](?P<t1>{_TIME})\s*-\s*(?P<d2>{_DATE})[ T](?P<t2>{_TIME})"
    r"(?:\s+(?P<zone>\S+))?"
)
_WEEKLY = re.compile(
    rf"(?:(?P<days>[A-Za-z][A-Za-z,\s-]*?)\s+)?(?P<start>{_TIME})\s*-\s*(?P<end>{_TIME})"
    r"(?:\s+(?P<zone>\S+))?"
)


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """Muted on `days` (0 = Monday) from `start` to `end` (minutes of the day) in `zone`."""

    days: frozenset[int]
    start: int
    end: int
    zone: tzinfo

    def covers(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        day = local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        yesterday = (day - 1) % 7
        return (day in self.days and minute >= self.start) or (
            yesterday in self.days and minute < self.end
        )


@dataclass(frozen=True, slots=True)
class AbsoluteWindow:
    """Muted from `start` (inclusive) to `end` (exclusive)."""

    start: datetime
    end: datetime

    def covers(self, now: datetime) -> bool:
        return self.start <= now < self.end


Window = WeeklyWindow | AbsoluteWindow


@functools.lru_cache(maxsize=256)
def parse_mute(text: str) -> Window:
    """Parse one mute spec (see the module docstring).

    In: e.g. `"Mon-Fri 22:00-07:00 UTC"`. Out: a `WeeklyWindow` or `AbsoluteWindow`.
    Raises: `ValueError` saying what is wrong and showing the valid forms.
    """
    stripped = " ".join(text.split())
    absolute = _ABSOLUTE.fullmatch(stripped)
    if absolute is not None:
        return _absolute(text, absolute)
    weekly = _WEEKLY.fullmatch(stripped)
    if weekly is not None:
        return _weekly(text, weekly)
    raise ValueError(f"{text!r} is not a mute window; {_HINT}")


def is_muted(specs: Iterable[str | Window], now: datetime) -> bool:
    """True when any spec covers `now`.

    In: mute specs (text, as in rule and route files, or parsed windows) and an aware
    `now`. Out: whether notifications are muted now.
    Raises: `ValueError` for a spec that does not parse (validated files never have one).
    """
    return any((parse_mute(s) if isinstance(s, str) else s).covers(now) for s in specs)


def next_opening(spec: str | Window, now: datetime) -> tuple[datetime, datetime] | None:
    """The window of `spec` that is open at `now`, else the next one to open (weekly
    windows: within the coming eight days). Out: `(start, end)` in UTC, or None (an
    absolute window that has ended).
    """
    window = parse_mute(spec) if isinstance(spec, str) else spec
    if isinstance(window, AbsoluteWindow):
        if window.end <= now:
            return None
        return window.start.astimezone(UTC), window.end.astimezone(UTC)
    today = now.astimezone(window.zone).date()
    for offset in range(-1, 9):
        day = today + timedelta(days=offset)
        if day.weekday() not in window.days:
            continue
        start = _at(day, window.start, window.zone)
        length = (window.end - window.start) % (24 * 60)
        end = _at(day, window.start + length, window.zone)
        if end > now:
            return start.astimezone(UTC), end.astimezone(UTC)
    return None


def _at(day: date, minutes: int, zone: tzinfo) -> datetime:
    """Wall-clock `minutes` after midnight of `day` in `zone` (may be past 24:00)."""
    later = day + timedelta(days=minutes // (24 * 60))
    minute = minutes % (24 * 60)
    return datetime(later.year, later.month, later.day, minute // 60, minute % 60, tzinfo=zone)


def _zone(text: str, name: str | None) -> tzinfo:
    if name is None:
        raise ValueError(f"{text!r}: add a time zone at the end (e.g. UTC or Europe/Berlin)")
    if name.upper() in {"UTC", "Z"}:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{text!r}: unknown time zone {name!r}; use an IANA name such as Europe/Berlin, or UTC"
        ) from None


def _minutes(text: str, clock: str, *, end: bool) -> int:
    hours, minutes = (int(part) for part in clock.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        allowed = "00:00-24:00" if end else "00:00-23:59"
        raise ValueError(f"{text!r}: {clock} is not a time of day ({allowed})")
    return hours * 60 + minutes


def _days(text: str, spec: str | None) -> frozenset[int]:
    if spec is None:
        return frozenset(range(7))
    days: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        a, b = _day(text, first), _day(text, last) if last else None
        if b is None:
            days.add(a)
        else:
            days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def _day(text: str, name: str) -> int:
    key = name.lower()
    for index, names in enumerate(zip(DAYS, _FULL_DAYS, strict=True)):
        if key in names:
            return index
    raise ValueError(f"{text!r}: {name!r} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")


def _weekly(text: str, match: re.Match[str]) -> WeeklyWindow:
    start = _minutes(text, match["start"], end=False)
    end = _minutes(text, match["end"], end=True)
    if start == end:
        raise ValueError(f"{text!r}: the window is empty (start and end are both {match['end']})")
    return WeeklyWindow(_days(text, match["days"]), start, end, _zone(text, match["zone"]))


def _absolute(text: str, match: re.Match[str]) -> AbsoluteWindow:
    zone = _zone(text, match["zone"])
    start = _datetime(text, match["d1"], match["t1"], zone)
    end = _datetime(text, match["d2"], match["t2"], zone)
    if end <= start:
        raise ValueError(f"{text!r}: the end must be after the start")
    return AbsoluteWindow(start, end)


def _datetime(text: str, day: str, clock: str, zone: tzinfo) -> datetime:
    minutes = _minutes(text, clock, end=False)
    try:
        date = datetime.strptime(day, "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"{text!r}: {day} is not a date (YYYY-MM-DD)") from None
    return date.replace(hour=minutes // 60, minute=minutes % 60, tzinfo=zone)


def _validate(value: str) -> str:
    try:
        parse_mute(value)
    except ValueError as exc:
        raise PydanticCustomError("mute", "{reason}", {"reason": str(exc)}) from None
    return value


MuteSpec = Annotated[
    str,
    AfterValidator(_validate),
    Field(
        description=(
            "a weekly window `[DAYS] HH:MM-HH:MM ZONE` (days Mon..Sun, lists and ranges; an "
            "end before the start runs past midnight) or an absolute window "
            "`YYYY-MM-DD HH:MM-YYYY-MM-DD HH:MM ZONE`; ZONE is an IANA name or UTC"
        ),
        examples=list(EXAMPLES),
    ),
]
"""A pydantic field type for one mute spec: validated at load, kept as the text."""
