"""Configuration loading (DESIGN section 3): defaults, errors with places, env, secrets."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from watcher.config.secrets import SecretError, SecretRef, parse_ref, resolve
from watcher.config.settings import (
    LITERAL_KEY_MESSAGE,
    LoadedSettings,
    Settings,
    StateConfig,
    TelnyxAccountConfig,
    check_secrets,
    default_config_path,
    load_settings,
    resolve_secrets,
)
from watcher.config.yamlfile import ConfigError, format_validation_errors, load_yaml

REPO = Path(__file__).resolve().parent.parent
KEY = "KEY0123456789abcdefTOPSECRET"
ENV = {"TELNYX_API_KEY": KEY}


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, **environ: str) -> LoadedSettings:
    return load_settings(write(tmp_path, text), environ=environ)


def errors_of(tmp_path: Path, text: str, **environ: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ)
    prefix = f"{path}:"
    return [e.removeprefix(prefix) for e in caught.value.errors]


# --- defaults ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file_is_a_valid_config(tmp_path: Path, text: str) -> None:
    loaded = load(tmp_path, text)
    settings = loaded.settings
    (account,) = settings.accounts
    assert account.name == "default"
    assert account.provider == "telnyx"
    assert account.api_key == SecretRef("env", "TELNYX_API_KEY")
    assert str(account.api_key) == "env:TELNYX_API_KEY"
    assert account.base_url == "https://api.telnyx.com/v2"
    assert account.topup.enabled is False
    assert account.topup.amount == Decimal("100.00")
    assert account.topup.max_per_day == Decimal("300.00")
    assert account.topup.min_interval == timedelta(hours=1)
    assert account.topup.verify_within == timedelta(minutes=10)
    assert account.topup.max_per_month is None
    assert settings.poll.interval == timedelta(seconds=60)
    assert settings.poll.timeout == timedelta(seconds=10)
    assert settings.rules == ["rules/*.yaml"]
    assert settings.state.path is None
    assert settings.notify.routes == {}
    assert settings.notify.default_route is None
    assert settings.notify.repeat_interval == timedelta(hours=4)
    assert settings.notify.send_resolved is True
    assert settings.metrics.listen is None
    assert (settings.log.level, settings.log.format) == ("info", "auto")
    assert loaded.config_dir == tmp_path
    assert loaded.rule_globs() == [str(tmp_path / "rules/*.yaml")]


def test_example_config_loads_and_resolves(tmp_path: Path) -> None:
    (tmp_path / "billing_mail_url").write_text("mailtos://bill:pw123456@smtp.example.com\n")
    environ = {
        "TELNYX_API_KEY": KEY,
        "SLACK_URL": "slack://TokenAAAA/TokenBBBB/TokenCCCCCCCC",
        "CREDENTIALS_DIRECTORY": str(tmp_path),
    }
    loaded = load_settings(REPO / "config.yaml.example", environ=environ)
    settings = loaded.settings
    assert [a.name for a in settings.accounts] == ["main"]
    assert settings.accounts[0].topup.enabled is False
    assert settings.rules == ["rules/*.yaml"]
    assert set(settings.notify.routes) == {"ops", "billing"}
    assert settings.notify.default_route == "ops"
    assert settings.web_address() == ("127.0.0.1", 9464)
    secrets = resolve_secrets(settings, environ=environ, config_dir=loaded.config_dir)
    assert secrets.api_keys["main"].get_secret_value() == KEY
    ops = [url.get_secret_value() for url in secrets.route_urls["ops"]]
    assert ops[0] == environ["SLACK_URL"]
    assert ops[1].startswith("mailtos://")
    billing = secrets.route_urls["billing"][0].get_secret_value()
    assert billing == "mailtos://bill:pw123456@smtp.example.com"


def test_example_config_warns_about_secrets_missing_in_ci() -> None:
    loaded = load_settings(REPO / "config.yaml.example", environ={})
    warnings = check_secrets(loaded.settings, environ={}, config_dir=loaded.config_dir)
    assert warnings == [
        "account main: secret env:TELNYX_API_KEY: environment variable TELNYX_API_KEY is not set",
        "route ops: secret env:SLACK_URL: environment variable SLACK_URL is not set",
        "route billing: secret credential:billing_mail_url: $CREDENTIALS_DIRECTORY is not "
        "set (credential: references work under systemd LoadCredential=)",
    ]


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    (error,) = caught.value.errors
    assert error.startswith(f"{path}: no such file")


def test_empty_sections_mean_defaults(tmp_path: Path) -> None:
    text = "poll:\nstate:\nnotify:\nmetrics:\nlog:\naccounts:\n  - name: a\n    topup:\n"
    settings = load(tmp_path, text).settings
    assert settings.poll.interval == timedelta(seconds=60)
    assert settings.accounts[0].topup.amount == Decimal("100.00")


# --- values ------------------------------------------------------------------------


def test_full_config_values(tmp_path: Path) -> None:
    text = """\
accounts:
  - name: main
    api_key: credential:telnyx_api_key
    base_url: http://127.0.0.1:4010/v2/
    topup: {enabled: true, amount: "50.00", max_per_day: "150.50", min_interval: 2h}
  - name: second
    api_key: file:keys/second
poll: {interval: 30s, timeout: 5s}
rules: [rules/*.yaml, /etc/extra/*.yaml]
state: {path: data/state.db}
notify:
  repeat_interval: 1h
  send_resolved: false
  routes:
    ops: {urls: ["json://127.0.0.1:9/hook"], min_severity: warning}
metrics: {listen: "[::1]:9464"}
log: {level: debug, format: json}
"""
    loaded = load(tmp_path, text)
    settings = loaded.settings
    main, second = settings.accounts
    assert isinstance(main, TelnyxAccountConfig)
    assert main.api_key == SecretRef("credential", "telnyx_api_key")
    assert main.base_url == "http://127.0.0.1:4010/v2"
    assert main.topup.enabled is True
    assert main.topup.amount == Decimal("50.00")
    assert main.topup.max_per_day == Decimal("150.50")
    assert main.topup.min_interval == timedelta(hours=2)
    assert second.api_key == SecretRef("file", "keys/second")
    assert settings.poll.interval == timedelta(seconds=30)
    assert settings.notify.default_route == "ops"
    assert settings.notify.routes["ops"].min_severity == "warning"
    assert settings.notify.send_resolved is False
    assert settings.metrics.address() == ("::1", 9464)
    assert settings.log.level == "debug"
    assert loaded.rule_globs() == [str(tmp_path / "rules/*.yaml"), "/etc/extra/*.yaml"]
    assert settings.state.resolve_state_path({}, loaded.config_dir) == tmp_path / "data/state.db"
    assert settings.account("second") is second


def test_money_is_decimal_from_its_text(tmp_path: Path) -> None:
    text = 'accounts:\n  - topup: {amount: "0.10", max_per_day: "0.30"}\n'
    settings = load(tmp_path, text).settings
    assert settings.accounts[0].topup.amount == Decimal("0.10")
    assert settings.accounts[0].topup.max_per_day == Decimal("0.30")


# --- errors with places ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("pol:\n  interval: 30s\n", "1:1: pol: Extra inputs", id="top-level"),
        pytest.param(
            "accounts:\n  - name: main\n    api_kye: env:X\n",
            "3:5: accounts[0].api_kye: Extra inputs",
            id="accounts[0]",
        ),
        pytest.param(
            "accounts:\n  - name: main\n    topup:\n      enable: true\n",
            "4:7: accounts[0].topup.enable: Extra inputs",
            id="topup",
        ),
        pytest.param(
            "notify:\n  routes:\n    ops:\n      urls: [json://h]\n      min_sev: info\n",
            "5:7: notify.routes.ops.min_sev: Extra inputs",
            id="notify.routes.ops",
        ),
        pytest.param(
            "notify:\n  default_rout: ops\n", "2:3: notify.default_rout: Extra", id="notify"
        ),
        pytest.param("poll:\n  intervl: 30s\n", "2:3: poll.intervl: Extra inputs", id="poll"),
        pytest.param("state:\n  pth: /x\n", "2:3: state.pth: Extra inputs", id="state"),
        pytest.param("metrics:\n  port: 1\n", "2:3: metrics.port: Extra inputs", id="metrics"),
        pytest.param("log:\n  lvl: info\n", "2:3: log.lvl: Extra inputs", id="log"),
    ],
)
def test_unknown_key_reported_at_its_place(tmp_path: Path, text: str, expected: str) -> None:
    (error,) = errors_of(tmp_path, text)
    assert error.startswith(expected), error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("poll:\n  interval: 5x\n", "2:13: poll.interval: '5x' is not a duration"),
        pytest.param(
            "poll:\n  interval: 5s\n", "2:13: poll.interval: must be at least 10s (got 5s)"
        ),
        pytest.param(
            "poll:\n  interval: 30s\n  timeout: 1m\n",
            "3:12: poll.timeout: must be at most poll.interval (30s; got 1m)",
        ),
        pytest.param(
            "notify:\n  default_route: nope\n  routes:\n    ops: {urls: [json://h]}\n",
            "2:18: notify.default_route: 'nope' is not a route in notify.routes (routes: ops)",
        ),
        pytest.param(
            "notify:\n  default_route: ops\n",
            "2:18: notify.default_route: 'ops' is not a route",
        ),
        pytest.param(
            "notify:\n  routes:\n    ops: {min_severity: info}\n",
            "3:10: notify.routes.ops.urls: Field required",
        ),
        pytest.param(
            "notify:\n  routes:\n    ops: {urls: []}\n",
            "3:17: notify.routes.ops.urls: List should have at least 1 item",
        ),
        pytest.param(
            "notify:\n  routes:\n    ops:\n      urls: [json://h, not a url]\n",
            "4:24: notify.routes.ops.urls[1]: not a secret reference",
        ),
        pytest.param(
            "notify:\n  routes:\n    Ops: {urls: [json://h]}\n",
            "3:5: notify.routes.Ops: String should match pattern",
        ),
        pytest.param(
            "notify:\n  routes:\n    ops: {urls: [env:bad name]}\n",
            "3:18: notify.routes.ops.urls[0]: an env: reference needs a variable name",
        ),
        pytest.param(
            "notify:\n  routes:\n    ops: {urls: [json://h], min_severity: high}\n",
            "3:43: notify.routes.ops.min_severity: Input should be 'info', 'warning' or 'critical'",
        ),
        pytest.param(
            "accounts:\n  - name: Main Account\n",
            "2:11: accounts[0].name: String should match pattern '^[a-z0-9_-]+$'",
        ),
        pytest.param(
            "accounts:\n  - name: a\n  - name: a\n",
            "2:3: accounts: account names must be unique; used more than once: a",
        ),
        pytest.param("accounts: []\n", "1:11: accounts: List should have at least 1 item"),
        pytest.param(
            "accounts:\n  - provider: twilio\n", "2:15: accounts[0].provider: Input should be"
        ),
        pytest.param(
            "accounts:\n  - base_url: ftp://x\n",
            "2:15: accounts[0].base_url: must be an http:// or https:// URL",
        ),
        pytest.param(
            "accounts:\n  - topup: {amount: -5}\n",
            "2:21: accounts[0].topup.amount: Input should be greater than 0",
        ),
        pytest.param(
            "accounts:\n  - topup: {amount: 1.234}\n",
            "2:21: accounts[0].topup.amount: Decimal input should have no more than 2 decimal",
        ),
        pytest.param(
            "accounts:\n  - topup: {amount: lots}\n",
            '2:21: accounts[0].topup.amount: Input should be an amount such as "100.00"',
        ),
        pytest.param(
            'accounts:\n  - topup: {amount: "200.00", max_per_day: "100.00"}\n',
            "2:44: accounts[0].topup.max_per_day: max_per_day (100.00) must be at least "
            "the top-up amount (200.00)",
        ),
        pytest.param(
            "accounts:\n  - topup: {amount: 100}\n",
            "2:21: accounts[0].topup.amount: must be written with exactly two decimals",
        ),
        pytest.param(
            'accounts:\n  - topup: {amount: "100.5"}\n',
            "2:21: accounts[0].topup.amount: must be written with exactly two decimals",
        ),
        pytest.param("metrics:\n  listen: localhost\n", "2:11: metrics.listen: must be host:port"),
        pytest.param("log:\n  format: xml\n", "2:11: log.format: Input should be 'auto'"),
        pytest.param("rules: rules/*.yaml\n", "1:8: rules: Input should be a valid list"),
        pytest.param("poll: 60s\n", "1:7: poll: Input should be a valid dictionary"),
        pytest.param("- a\n- b\n", "1:1: the file must be a mapping of sections"),
    ],
)
def test_invalid_value_reported_at_its_place(tmp_path: Path, text: str, expected: str) -> None:
    (error,) = errors_of(tmp_path, text)
    assert error.startswith(expected), error


def test_all_errors_reported_at_once_in_file_order(tmp_path: Path) -> None:
    text = """\
log:
  level: loud
accounts:
  - name: main
    bogus: 1
poll:
  interval: 2s
notify:
  routes:
    ops: {urls: [json://h], colour: red}
"""
    errors = errors_of(tmp_path, text)
    assert errors == [
        "2:10: log.level: Input should be 'debug', 'info', 'warning' or 'error'",
        "5:5: accounts[0].bogus: Extra inputs are not permitted",
        "7:13: poll.interval: must be at least 10s (got 2s)",
        "10:29: notify.routes.ops.colour: Extra inputs are not permitted",
    ]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("poll:\n  interval: 30s\n timeout: 5s\n", r"3:2: expected <block end>"),
        ("accounts: [a, b\n", r"2:1: expected ',' or ']'"),
        ("log: level: info\n", r"1:11: mapping values are not allowed here"),
        ("poll: {interval: 30s}\npoll: {timeout: 5s}\n", r"2:1: duplicate key 'poll'"),
        ("a: 1\n---\nb: 2\n", r"2:1: but found another document"),
    ],
)
def test_yaml_syntax_error_has_line_and_column(tmp_path: Path, text: str, pattern: str) -> None:
    (error,) = errors_of(tmp_path, text)
    assert re.match(pattern, error), error


def test_private_init_arguments_cannot_be_smuggled_in(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path, "log: {}\n_env_prefix: X_\n")
    assert error == "2:1: _env_prefix: Extra inputs are not permitted"


# --- secrets never shown -----------------------------------------------------------


def test_literal_api_key_is_refused_without_echo(tmp_path: Path) -> None:
    path = write(tmp_path, f"accounts:\n  - name: main\n    api_key: {KEY}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.errors == [f"{path}:3:14: accounts[0].api_key: {LITERAL_KEY_MESSAGE}"]
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("value", [KEY, "12345678", "Bearer abc", "ENV:TELNYX_API_KEY"])
def test_anything_but_a_reference_is_refused_as_api_key(tmp_path: Path, value: str) -> None:
    (error,) = errors_of(tmp_path, f"accounts:\n  - api_key: '{value}'\n")
    assert error.endswith(LITERAL_KEY_MESSAGE)
    assert value not in error


def test_no_secret_in_repr_of_settings_or_resolved(tmp_path: Path) -> None:
    url = "mailtos://alerts:Pa55w0rdXYZ@smtp.example.com?to=a@example.com"
    loaded = load(tmp_path, f"notify:\n  routes:\n    ops: {{urls: ['{url}', env:HOOK]}}\n")
    environ = {"TELNYX_API_KEY": KEY, "HOOK": "json://hook.example.com/TOKEN0123456789"}
    secrets = resolve_secrets(loaded.settings, environ=environ, config_dir=loaded.config_dir)
    shown = repr(loaded.settings) + str(loaded.settings) + repr(loaded) + repr(secrets)
    for secret in (KEY, "Pa55w0rdXYZ", "TOKEN0123456789"):
        assert secret not in shown
    assert "env:HOOK" in repr(loaded.settings)
    assert "mailtos://***" in repr(loaded.settings)
    assert secrets.route_urls["ops"][0].get_secret_value() == url


# --- environment overrides ---------------------------------------------------------


def test_env_overrides_file_values(tmp_path: Path) -> None:
    text = "poll:\n  interval: 60s\n  timeout: 5s\nlog:\n  level: info\n"
    environ = {"WATCHER_POLL__INTERVAL": "30s", "WATCHER_LOG__LEVEL": "debug"}
    settings = load(tmp_path, text, **environ).settings
    assert settings.poll.interval == timedelta(seconds=30)
    assert settings.poll.timeout == timedelta(seconds=5)  # kept from the file
    assert settings.log.level == "debug"


@pytest.mark.parametrize(
    ("environ", "check"),
    [
        ({"watcher_log__format": "json"}, lambda s: s.log.format == "json"),
        ({"WATCHER_NOTIFY__SEND_RESOLVED": "false"}, lambda s: s.notify.send_resolved is False),
        ({"WATCHER_RULES": '["a/*.yaml"]'}, lambda s: s.rules == ["a/*.yaml"]),
        ({"WATCHER_METRICS__LISTEN": "127.0.0.2:9"}, lambda s: s.metrics.listen == "127.0.0.2:9"),
        ({"WATCHER_STATE__PATH": "/x/s.db"}, lambda s: s.state.path == Path("/x/s.db")),
        ({"WATCHER_LOG__LEVEL": ""}, lambda s: s.log.level == "info"),
        ({"WATCHER_CONFIG": "/x.yaml"}, lambda s: s.log.level == "info"),
        (
            {"WATCHER_ACCOUNTS": '[{"name": "a"}, {"name": "b"}]'},
            lambda s: [a.name for a in s.accounts] == ["a", "b"],
        ),
        (
            {"WATCHER_NOTIFY__ROUTES__OPS__MIN_SEVERITY": "critical"},
            lambda s: s.notify.routes["ops"].min_severity == "critical",
        ),
    ],
)
def test_env_override_forms(
    tmp_path: Path, environ: dict[str, str], check: Callable[[Settings], bool]
) -> None:
    text = "notify:\n  routes:\n    ops: {urls: [json://h]}\n"
    settings = load(tmp_path, text, **environ).settings
    assert check(settings)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHER_POLL__INTERVAL": "5s"}, ["WATCHER_POLL__INTERVAL: must be at least 10s"]),
        ({"WATCHER_POLL__INTERVL": "5s"}, ["WATCHER_POLL__INTERVL: Extra inputs"]),
        ({"WATCHER_LOG__LEVEL": "loud"}, ["WATCHER_LOG__LEVEL: Input should be 'debug'"]),
        ({"WATCHER_ACCOUNTS": "[{"}, ["WATCHER_ACCOUNTS: not valid JSON for accounts"]),
        (
            {"WATCHER_ACCOUNTS": '[{"name": "A"}]'},
            ["WATCHER_ACCOUNTS: accounts[0].name: String should match pattern"],
        ),
        (
            {"WATCHER_NOTIFY__DEFAULT_ROUTE": "nope"},
            ["WATCHER_NOTIFY__DEFAULT_ROUTE: 'nope' is not a route"],
        ),
    ],
)
def test_env_errors_name_the_variable(
    tmp_path: Path, environ: dict[str, str], expected: list[str]
) -> None:
    errors = errors_of(tmp_path, "", **environ)
    assert len(errors) == len(expected)
    for error, start in zip(errors, expected, strict=True):
        assert error.startswith(start), error


def test_file_and_env_errors_together(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, "log:\n  level: loud\n", WATCHER_POLL__TIMEOUT="0s")
    assert errors == [
        "2:10: log.level: Input should be 'debug', 'info', 'warning' or 'error'",
        "WATCHER_POLL__TIMEOUT: must be longer than 0s",
    ]


def test_settings_reads_os_environ_outside_load_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHER_LOG__LEVEL", "error")
    assert Settings().log.level == "error"
    assert Settings(log={"level": "warning"}).log.level == "error"  # env wins over init


# --- poll and routes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "allow", "interval", "timeout"),
    [
        ("poll: {interval: 5s}\n", True, timedelta(seconds=5), timedelta(seconds=5)),
        ("poll: {interval: 0.5s}\n", True, timedelta(seconds=0.5), timedelta(seconds=0.5)),
        ("poll: {interval: 2s, timeout: 1s}\n", True, timedelta(seconds=2), timedelta(seconds=1)),
        ("poll: {interval: 10s}\n", False, timedelta(seconds=10), timedelta(seconds=10)),
        ("poll: {interval: 1h, timeout: 1h}\n", False, timedelta(hours=1), timedelta(hours=1)),
    ],
)
def test_fast_poll_only_when_allowed(
    tmp_path: Path,
    text: str,
    allow: bool,
    interval: timedelta,
    timeout: timedelta,
) -> None:
    path = write(tmp_path, text)
    poll = load_settings(path, environ={}, allow_fast_poll=allow).settings.poll
    assert (poll.interval, poll.timeout) == (interval, timeout)


def test_fast_poll_refused_by_default(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path, "poll: {interval: 5s}\n")
    assert error == "1:18: poll.interval: must be at least 10s (got 5s)"


@pytest.mark.parametrize(
    ("routes", "default"),
    [
        ("{}", None),
        ("{ops: {urls: [json://h]}}", "ops"),
        ("{ops: {urls: [json://h]}, billing: {urls: [json://b]}}", None),
    ],
)
def test_default_route_inferred_only_from_a_single_route(
    tmp_path: Path, routes: str, default: str | None
) -> None:
    settings = load(tmp_path, f"notify:\n  routes: {routes}\n").settings
    assert settings.notify.default_route == default


def test_default_route_named_explicitly(tmp_path: Path) -> None:
    text = "notify:\n  default_route: b\n  routes: {a: {urls: [json://a]}, b: {urls: [json://b]}}\n"
    assert load(tmp_path, text).settings.notify.default_route == "b"


# --- state path --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "environ", "expected"),
    [
        ("/data/s.db", {"STATE_DIRECTORY": "/var/lib/aw"}, "/data/s.db"),
        (None, {"STATE_DIRECTORY": "/var/lib/aw", "XDG_STATE_HOME": "/x"}, "/var/lib/aw/state.db"),
        (None, {"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}, "/var/lib/a/state.db"),
        (None, {"XDG_STATE_HOME": "/xdg", "HOME": "/h"}, "/xdg/account-watcher/state.db"),
        (None, {"XDG_STATE_HOME": "rel", "HOME": "/h"}, "/h/.local/state/account-watcher/state.db"),
        (None, {"HOME": "/h"}, "/h/.local/state/account-watcher/state.db"),
        ("~/s.db", {"HOME": "/h"}, "/h/s.db"),
    ],
)
def test_state_path_resolution_order(
    configured: str | None, environ: dict[str, str], expected: str
) -> None:
    state = StateConfig(path=None if configured is None else Path(configured))
    assert state.resolve_state_path(environ) == Path(expected)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHER_CONFIG": "/srv/aw.yaml"}, Path("/srv/aw.yaml")),
        ({"WATCHER_CONFIG": ""}, Path("/etc/account-watcher/config.yaml")),
        ({}, Path("/etc/account-watcher/config.yaml")),
    ],
)
def test_default_config_path(environ: dict[str, str], expected: Path) -> None:
    assert default_config_path(environ) == expected


# --- secret references -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env:TELNYX_API_KEY", SecretRef("env", "TELNYX_API_KEY")),
        ("file:/run/keys/telnyx", SecretRef("file", "/run/keys/telnyx")),
        ("file:keys/telnyx", SecretRef("file", "keys/telnyx")),
        ("credential:telnyx_api_key", SecretRef("credential", "telnyx_api_key")),
        ("mailtos://u:p@host", None),
        ("json://127.0.0.1:9/hook", None),
        ("KEY0123", None),
        ("", None),
    ],
)
def test_parse_ref(text: str, expected: SecretRef | None) -> None:
    ref = parse_ref(text)
    assert ref == expected
    if ref is not None:
        assert str(ref) == text


@pytest.mark.parametrize("text", ["env:", "env:A B", "env:1X", "file:", "credential:a/b"])
def test_parse_ref_refuses_bad_names(text: str) -> None:
    with pytest.raises(ValueError, match="reference needs"):
        parse_ref(text)


def test_resolve_each_kind(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "telnyx_api_key").write_text(KEY + "\n")
    (tmp_path / "key.txt").write_text("from-file-secret\r\n")
    environ = {"MY_KEY": KEY, "CREDENTIALS_DIRECTORY": str(creds)}
    cases = {
        "env:MY_KEY": KEY,
        "credential:telnyx_api_key": KEY,
        f"file:{tmp_path / 'key.txt'}": "from-file-secret",
        "file:key.txt": "from-file-secret",
    }
    for text, expected in cases.items():
        ref = parse_ref(text)
        assert ref is not None
        value = resolve(ref, environ=environ, base_dir=tmp_path)
        assert isinstance(value, SecretStr)
        assert value.get_secret_value() == expected, text


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        (
            "env:TELNYX_API_KEY",
            {},
            "secret env:TELNYX_API_KEY: environment variable TELNYX_API_KEY is not set",
        ),
        (
            "env:TELNYX_API_KEY",
            {"TELNYX_API_KEY": ""},
            "secret env:TELNYX_API_KEY: environment variable TELNYX_API_KEY is empty",
        ),
        (
            "credential:telnyx",
            {},
            "secret credential:telnyx: $CREDENTIALS_DIRECTORY is not set "
            "(credential: references work under systemd LoadCredential=)",
        ),
        (
            "credential:telnyx",
            {"CREDENTIALS_DIRECTORY": "/nonexistent/creds"},
            "secret credential:telnyx: cannot read /nonexistent/creds/telnyx: "
            "No such file or directory",
        ),
        (
            "file:/nonexistent/key",
            {},
            "secret file:/nonexistent/key: cannot read /nonexistent/key: No such file or directory",
        ),
    ],
)
def test_unresolvable_reference_is_one_clear_sentence(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    ref = parse_ref(text)
    assert ref is not None
    with pytest.raises(SecretError) as caught:
        resolve(ref, environ=environ, base_dir=tmp_path)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("KEYsecret\r\nX-Evil: 1", "holds a line break or another control character"),
        ("KEYsecret\n\n", "holds a line break or another control character"),
        ("KEY\tsecret", "holds a line break or another control character"),
        ("KEYsecret\x00", "holds a line break or another control character"),
        (" KEYsecret", "begins or ends with a space"),
        ("KEYsecret \n", "begins or ends with a space"),
    ],
)
def test_a_value_no_key_or_url_can_be_is_refused_without_quoting_it(
    tmp_path: Path, value: str, problem: str
) -> None:
    """HTTP refuses such a header value when it is sent, and h11's refusal quotes it
    (into a log line); resolving refuses it first and names only where it came from."""
    (tmp_path / "key").write_text(value, newline="")
    for text, where in (("env:K", "environment variable K"), ("file:key", str(tmp_path / "key"))):
        ref = parse_ref(text)
        assert ref is not None
        if text == "env:K" and value.endswith("\n") and value.count("\n") == 1:
            continue  # an env var's final newline is not a file's: the case is the file's
        with pytest.raises(SecretError) as caught:
            resolve(ref, environ={"K": value}, base_dir=tmp_path)
        assert str(caught.value) == f"secret {text}: {where} {problem}" + (
            " (a file may end with one newline, no more)" if "control" in problem else ""
        )
        assert "KEY" not in str(caught.value)


def test_resolve_secrets_lists_every_problem(tmp_path: Path) -> None:
    text = """\
accounts:
  - {name: a, api_key: env:KEY_A}
  - {name: b, api_key: env:KEY_B}
notify:
  routes:
    ops: {urls: [env:HOOK, "json://127.0.0.1:9/x", file:missing.url]}
"""
    loaded = load(tmp_path, text)
    environ = {"KEY_A": KEY}
    with pytest.raises(SecretError) as caught:
        resolve_secrets(loaded.settings, environ=environ, config_dir=loaded.config_dir)
    assert caught.value.errors == [
        "account b: secret env:KEY_B: environment variable KEY_B is not set",
        "route ops: secret env:HOOK: environment variable HOOK is not set",
        f"route ops: secret file:missing.url: cannot read {tmp_path / 'missing.url'}: "
        "No such file or directory",
    ]
    assert KEY not in str(caught.value)
    warnings = check_secrets(loaded.settings, environ=environ, config_dir=loaded.config_dir)
    assert warnings == caught.value.errors


# --- locating pydantic errors in YAML ----------------------------------------------


class _Below(BaseModel):
    model_config = ConfigDict(extra="forbid")
    warning: float | None = None
    critical: float | None = None


class _Balance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["balance"]
    name: str
    below: float | _Below


class _Audit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["audit"]
    name: str


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[Annotated[_Balance | _Audit, Field(discriminator="kind")]]


RULES = """\
rules:
  - name: ok
    kind: audit
  - name: low-credit
    kind: balance
    below:
      warning: 100
      critical: lots
  - kind: balance
    below: 5
  - kind: audit
    name: x
    colour: red
"""


def test_discriminated_union_errors_are_located(tmp_path: Path) -> None:
    path = write(tmp_path, RULES, "billing.yaml")
    doc = load_yaml(path)
    with pytest.raises(ValidationError) as caught:
        _RuleFile.model_validate(doc.data)
    lines = format_validation_errors("rules/billing.yaml", doc, caught.value)
    assert lines[:2] == [
        "rules/billing.yaml:7:7: rules[1].below: Input should be a valid number",
        "rules/billing.yaml:8:17: rules[1].below.critical: Input should be a valid number, "
        "unable to parse string as a number",
    ]
    assert "rules/billing.yaml:9:5: rules[2].name: Field required" in lines
    assert "rules/billing.yaml:13:5: rules[3].colour: Extra inputs are not permitted" in lines
    assert lines == sorted(lines, key=lambda line: int(line.split(":")[1]))


def test_locate_and_prefix_loc(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, RULES, "rules.yaml"))
    assert doc.locate(("rules", 1, "balance", "below", "critical")) == (8, 17)
    assert doc.locate(("rules", 1, "below")) == (7, 7)
    assert doc.locate(("rules", 3, "colour"), key=True) == (13, 5)
    assert doc.locate(("rules", 3, "colour")) == (13, 13)
    assert doc.locate(("rules", 2, "name")) == (9, 5)
    assert doc.locate(("rules", 99)) == (2, 3)
    assert doc.locate(()) == (1, 1)
    with pytest.raises(ValidationError) as caught:
        _Below.model_validate(doc.data["rules"][1]["below"])
    (line,) = format_validation_errors("r.yaml", doc, caught.value, ("rules", 1, "below"))
    assert line.startswith("r.yaml:8:17: rules[1].below.critical: Input should be a valid number")


def test_locate_follows_merge_keys(tmp_path: Path) -> None:
    text = "base: &base\n  interval: 30s\npoll:\n  <<: *base\n  timeout: 5s\n"
    doc = load_yaml(write(tmp_path, text))
    assert doc.data["poll"] == {"interval": "30s", "timeout": "5s"}
    assert doc.locate(("poll", "interval")) == (2, 13)
    assert doc.locate(("poll", "timeout")) == (5, 12)


def test_load_yaml_of_empty_file(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path, ""))
    assert doc.data is None
    assert doc.root is None
    assert doc.locate(("a", 1)) == (1, 1)


def test_load_yaml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(tmp_path / "gone.yaml")
    assert caught.value.errors == [f"{tmp_path / 'gone.yaml'}: no such file"]
