"""Durations: parsing what operators write, formatting for messages, the pydantic type."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from watcher.durations import Duration, duration_text, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("0s", timedelta(0)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        (" 45s ", timedelta(seconds=45)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0.5s", timedelta(milliseconds=500)),
        ("90", timedelta(seconds=90)),
        (90, timedelta(seconds=90)),
        (0, timedelta(0)),
        (1.5, timedelta(seconds=1.5)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_parse_duration_accepts(text: str | int | float | timedelta, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5x", "'5x' is not a duration; use e.g. 90s, 5m, 1h30m, 2d"),
        ("", "'' is not a duration"),
        ("   ", "is not a duration"),
        ("m", "'m' is not a duration"),
        ("30m1h", "'30m1h' is not a duration"),
        ("1h1h", "'1h1h' is not a duration"),
        ("-5m", "'-5m' is not a duration"),
        ("1.5m", "'1.5m' is not a duration"),
        ("5 minutes", "'5 minutes' is not a duration"),
        (-3, "negative"),
        (True, "True is not a duration"),
        (float("nan"), "is not a duration"),
        (timedelta(seconds=-1), "negative"),
    ],
)
def test_parse_duration_refuses(text: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)  # type: ignore[arg-type]
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("td", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=90), "1m 30s"),
        (timedelta(hours=2, minutes=5), "2h 05m"),
        (timedelta(hours=2, minutes=5, seconds=59), "2h 05m"),
        (timedelta(hours=2), "2h"),
        (timedelta(days=3, hours=4, minutes=10), "3d 4h"),
        (timedelta(days=1, minutes=10), "1d"),
        (timedelta(minutes=5, seconds=7), "5m 07s"),
        (timedelta(milliseconds=400), "0s"),
    ],
)
def test_format_duration(td: timedelta, expected: str) -> None:
    assert format_duration(td) == expected


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=2), "2d"),
        (timedelta(days=1, seconds=1), "1d1s"),
        (timedelta(milliseconds=1500), "1.5s"),
    ],
)
def test_duration_text_round_trips(td: timedelta, text: str) -> None:
    assert duration_text(td) == text
    assert parse_duration(text) == td


class _Model(BaseModel):
    wait: Duration = timedelta(minutes=5)


def test_duration_field_parses_and_dumps_text() -> None:
    model = _Model.model_validate({"wait": "1h30m"})
    assert model.wait == timedelta(hours=1, minutes=30)
    assert model.model_dump(mode="json") == {"wait": "1h30m"}
    assert _Model().model_dump(mode="json") == {"wait": "5m"}


def test_duration_field_error_is_clear() -> None:
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate({"wait": "5x"})
    (error,) = caught.value.errors()
    assert error["loc"] == ("wait",)
    assert error["msg"] == "'5x' is not a duration; use e.g. 90s, 5m, 1h30m, 2d"


def test_duration_json_schema_is_text_or_seconds() -> None:
    schema = _Model.model_json_schema()["properties"]["wait"]
    types = {option["type"] for option in schema["anyOf"]}
    assert types == {"string", "integer"}
