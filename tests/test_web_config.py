"""`web.listen`, its older spelling `metrics.listen`, and `web.token` (DESIGN §3, §11):
a listen address off loopback needs a token; both spellings set must agree; the token
is a secret reference, read at start and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from watcher.config.resolve import resolve_web_token
from watcher.config.sections import is_loopback
from watcher.config.settings import load_settings
from watcher.config.yamlfile import ConfigError

TOKEN = "web-token-for-tests-123"


def load(tmp_path: Path, text: str) -> tuple[tuple[str, int] | None, list[str]]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    try:
        settings = load_settings(path, environ={}).settings
    except ConfigError as exc:
        return None, [e.removeprefix(f"{path}:") for e in exc.errors]
    return settings.web_address(), []


@pytest.mark.parametrize(
    ("text", "address", "error"),
    [
        ("", None, ""),
        ("web:\n  listen: 127.0.0.1:9464\n", ("127.0.0.1", 9464), ""),
        ("web:\n  listen: localhost:9464\n", ("localhost", 9464), ""),
        ('web:\n  listen: "[::1]:9464"\n', ("::1", 9464), ""),
        ("metrics:\n  listen: 127.0.0.1:9464\n", ("127.0.0.1", 9464), ""),  # the old spelling
        (
            "web:\n  listen: 127.0.0.1:1\nmetrics:\n  listen: 127.0.0.1:1\n",
            ("127.0.0.1", 1),
            "",
        ),
        (
            "web:\n  listen: 0.0.0.0:9464\n  token: env:WEB_TOKEN\n",
            ("0.0.0.0", 9464),
            "",
        ),
        (
            "web:\n  token: env:WEB_TOKEN\nmetrics:\n  listen: 10.0.0.5:9464\n",
            ("10.0.0.5", 9464),
            "",
        ),
        ("web:\n  listen: 0.0.0.0:9464\n", None, "2:3: web: listen 0.0.0.0:9464 is not a loopback"),
        ('web:\n  listen: "[::]:9464"\n', None, "2:3: web: listen [::]:9464 is not a loopback"),
        ("web:\n  listen: example.com:80\n", None, "2:3: web: listen example.com:80 is not"),
        ("metrics:\n  listen: 0.0.0.0:9464\n", None, "2:3: metrics: listen 0.0.0.0:9464 is not"),
        (
            "web:\n  listen: 127.0.0.1:1\nmetrics:\n  listen: 127.0.0.1:2\n",
            None,
            "4:3: metrics: listen (127.0.0.1:2) differs from web.listen (127.0.0.1:1)",
        ),
        ("web:\n  listen: 127.0.0.1\n", None, "2:11: web.listen: must be host:port"),
        ("web:\n  token: hunter2hunter2\n", None, "2:10: web.token: must be a secret reference"),
        ("web:\n  port: 1\n", None, "2:3: web.port: Extra inputs are not permitted"),
    ],
)
def test_web_listen_and_token(
    tmp_path: Path, text: str, address: tuple[str, int] | None, error: str
) -> None:
    got, errors = load(tmp_path, text)
    if error:
        assert len(errors) == 1 and errors[0].startswith(error), errors
        assert "hunter2" not in errors[0]
    else:
        assert errors == [] and got == address


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_check_fails_off_loopback_without_a_token(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("rules: []\nweb:\n  listen: 0.0.0.0:9464\n")
    done = run_cli("--config", str(config), "check")
    assert done.returncode == 1
    assert "web: listen 0.0.0.0:9464 is not a loopback address: set web.token" in done.stderr
    assert "Traceback" not in done.stderr


def test_token_is_read_from_its_reference_and_an_unset_one_is_an_error(tmp_path: Path) -> None:
    from watcher.config.secrets import SecretError, parse_ref

    ref = parse_ref("env:WEB_TOKEN")
    token = resolve_web_token(ref, environ={"WEB_TOKEN": TOKEN}, config_dir=tmp_path)
    assert token is not None and token.get_secret_value() == TOKEN
    assert TOKEN not in repr(token)
    assert resolve_web_token(None, environ={}, config_dir=tmp_path) is None
    with pytest.raises(SecretError, match="WEB_TOKEN"):
        resolve_web_token(ref, environ={}, config_dir=tmp_path)


def test_an_unset_token_is_a_warning_for_check_and_an_error_for_run(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"rules: []\nstate: {{path: {tmp_path / 'state.db'}}}\n"
        "notify: {routes: {ops: {urls: ['json://127.0.0.1:9/x']}}}\n"
        "web:\n  listen: 127.0.0.1:0\n  token: env:AW_TEST_WEB_TOKEN\n"
    )
    checked = run_cli("--config", str(config), "check")
    assert checked.returncode == 0, checked.stderr
    assert "warning: web.token: secret env:AW_TEST_WEB_TOKEN: environment variable" in (
        checked.stderr
    )
    ran = run_cli("--config", str(config), "run", timeout=30)
    assert ran.returncode == 2
    assert "web.token: secret env:AW_TEST_WEB_TOKEN" in ran.stderr
    assert "Traceback" not in ran.stderr
