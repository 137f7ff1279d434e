"""Durations: parsing what operators write, formatting for messages, the pydantic type."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from conftest import cli_env, run_cli
from pydantic import BaseModel, ValidationError

from watcher.core.durations import Duration, duration_text, format_duration, parse_duration


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
        (90, '90: a duration needs a unit, e.g. "90s"'),
        (0, '0: a duration needs a unit, e.g. "0s"'),
        (1.5, '1.5: a duration needs a unit, e.g. "1.5s"'),
        ("10", '10: a duration needs a unit, e.g. "10s"'),
        (" 7 ", '7: a duration needs a unit, e.g. "7s"'),
        ("2.5", '2.5: a duration needs a unit, e.g. "2.5s"'),
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


def test_duration_field_without_unit_shows_the_fix() -> None:
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate({"wait": 7})
    (error,) = caught.value.errors()
    assert error["msg"] == '7: a duration needs a unit, e.g. "7s"'


def test_duration_json_schema_is_text_with_a_unit() -> None:
    schema = _Model.model_json_schema()["properties"]["wait"]
    assert schema["type"] == "string"
    assert "anyOf" not in schema
    assert "unit" in schema["description"]


def test_cli_duration_without_unit_is_refused_with_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"rules: []\nstate: {{path: {tmp_path / 'state.db'}}}\n")
    done = run_cli(
        "--config", str(config), "silence", "add", "x", "--duration", "10", "--reason", "r"
    )
    assert done.returncode == 2, done.stderr
    assert '10: a duration needs a unit, e.g. "10s"' in done.stderr
    done = run_cli("--config", str(config), "topups", "--since", "7")
    assert done.returncode == 2, done.stderr
    assert '7: a duration needs a unit, e.g. "7s"' in done.stderr


def test_environment_duration_without_unit_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("rules: []\n")
    done = run_cli(
        "--config", str(config), "check", env=cli_env(WATCHER_NOTIFY__REPEAT_INTERVAL="600")
    )
    assert done.returncode == 1, done.stderr
    assert '600: a duration needs a unit, e.g. "600s"' in done.stderr


def test_rule_test_times_need_a_unit(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n  - {name: low, kind: balance, below: 10}\n")
    spec = tmp_path / "low_test.yaml"
    spec.write_text(
        "rule_files: [rules.yaml]\ntests:\n  - name: t\n    balance: {available_credit: '5'}\n"
        "    expect:\n      - {at: 0, alerts: []}\n"
    )
    done = run_cli("test", str(spec))
    assert done.returncode == 1
    assert '0: a duration needs a unit, e.g. "0s"' in done.stdout
