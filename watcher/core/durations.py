"""Durations as operators write them: `90s`, `5m`, `1h30m`, `2d`.

Pure: no I/O. `Duration` is the pydantic field type used by settings, rules and rule
tests; it accepts the text form only and serialises back to text. A bare number (`7`,
`"10"`) is refused with the fix (`7: a duration needs a unit, e.g. "7s"`): seconds are
not assumed.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

_HINT = "use e.g. 90s, 5m, 1h30m, 2d"
_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
_PATTERN = re.compile(
    r"(?:(?P<d>\d+)d)?\s*(?:(?P<h>\d+)h)?\s*(?:(?P<m>\d+)m)?\s*(?:(?P<s>\d+(?:\.\d{1,6})?)s)?"
)
_TEXT_PATTERN = r"^\s*(\d+d)?\s*(\d+h)?\s*(\d+m)?\s*(\d+(\.\d{1,6})?s)?\s*$"
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse a duration.

    In: `"90s"`, `"5m"`, `"1h30m"`, `"2d"`, `"1d12h"`, `"0s"` (units in the order d h m s,
    each at most once, optional spaces between them), or a `timedelta`.
    Out: a non-negative `timedelta`.
    Raises: `ValueError` naming the input and showing valid forms; for a number without
    a unit (`7`, `"10"`, `1.5`), showing it with one (`7: a duration needs a unit, e.g.
    "7s"`).
    """
    if isinstance(text, timedelta):
        return _non_negative(text, text)
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration; {_HINT}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"{text!r} is negative; a duration is at least 0s")
        if not math.isfinite(text):
            raise ValueError(f"{text!r} is not a duration; {_HINT}")
        raise ValueError(_needs_unit(str(text)))
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration; {_HINT}")
    return _parse_text(text)


def _needs_unit(number: str) -> str:
    return f'{number}: a duration needs a unit, e.g. "{number}s"'


def _parse_text(text: str) -> timedelta:
    stripped = text.strip()
    if _BARE_NUMBER.fullmatch(stripped):
        raise ValueError(_needs_unit(stripped))
    match = _PATTERN.fullmatch(stripped)
    if not stripped or match is None:
        raise ValueError(f"{text!r} is not a duration; {_HINT}")
    parts = match.groupdict()
    seconds = sum(
        (Decimal(parts[unit]) * factor for unit, factor in _UNITS if parts[unit]),
        start=Decimal(0),
    )
    return _from_seconds(seconds, text)


def _from_seconds(seconds: Decimal, original: object) -> timedelta:
    try:
        whole = int(seconds)
        micros = int((seconds - whole) * 1_000_000)
    except (InvalidOperation, ValueError, OverflowError):
        raise ValueError(f"{original!r} is not a duration; {_HINT}") from None
    if seconds < 0:
        raise ValueError(f"{original!r} is negative; a duration is at least 0s")
    try:
        return timedelta(seconds=whole, microseconds=micros)
    except OverflowError:
        raise ValueError(f"{original!r} is too long a duration") from None


def _non_negative(value: timedelta, original: object) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"{original!r} is negative; a duration is at least 0s")
    return value


def duration_text(td: timedelta) -> str:
    """Exact compact text of a duration, the form `parse_duration` reads back.

    In: a non-negative `timedelta`. Out: e.g. `"1h30m"`, `"2d"`, `"0s"`, `"1.5s"`.
    """
    sign = "-" if td < timedelta(0) else ""
    td = abs(td)
    rest = td.days * 86_400 + td.seconds
    out = []
    for unit, factor in _UNITS:
        amount, rest = divmod(rest, factor)
        if amount and unit != "s":
            out.append(f"{amount}{unit}")
    seconds = td.seconds % 60
    if seconds or td.microseconds or not out:
        fraction = f".{td.microseconds:06d}".rstrip("0") if td.microseconds else ""
        out.append(f"{seconds}{fraction}s")
    return sign + "".join(out)


def format_duration(td: timedelta) -> str:
    """Human text of a duration for messages: the two largest units.

    In: a `timedelta` (fractions of a second are dropped).
    Out: e.g. `"45s"`, `"2h 05m"`, `"3d 4h"`, `"1m 30s"`, `"2h"`, `"0s"`.
    """
    sign = "-" if td < timedelta(0) else ""
    total = int(abs(td).total_seconds())
    amounts = []
    for unit, factor in _UNITS:
        amount, total = divmod(total, factor)
        amounts.append((unit, amount))
    while amounts and amounts[0][1] == 0:
        amounts.pop(0)
    if not amounts:
        return "0s"
    (first_unit, first), rest = amounts[0], amounts[1:]
    text = f"{sign}{first}{first_unit}"
    if rest and rest[0][1]:
        unit, amount = rest[0]
        text += f" {amount:02d}{unit}" if unit in "ms" else f" {amount}{unit}"
    return text


def _validate(value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None


Duration = Annotated[
    timedelta,
    BeforeValidator(_validate),
    PlainSerializer(duration_text, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _TEXT_PATTERN,
            "description": "a duration with a unit: 90s, 5m, 1h30m, 2d (a bare number is refused)",
            "examples": ["90s", "5m", "1h30m", "2d"],
        }
    ),
]
"""A pydantic field type for durations: reads `"1h30m"`, dumps `"1h30m"`."""
