"""The CLI's contract: exit codes, one-sentence errors, `check` output with places."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import API_KEY, REPO, cli_env, run_cli, write_config

from watcher.providers.telnyx.sim import SimServer

GOOD_RULES = "rules:\n  - {name: low, kind: balance, below: 10}\n"


def test_check_passes_on_shipped_example_without_credentials() -> None:
    env = cli_env()
    env.pop("TELNYX_API_KEY")
    result = run_cli("--config", str(REPO / "config.yaml.example"), "check", env=env)
    assert result.returncode == 0, result.stderr
    rule_files = len(list((REPO / "rules").glob("*.yaml")))
    assert f"ok: {REPO / 'config.yaml.example'}: 1 account(s), {rule_files} rule file(s)" in (
        result.stdout
    )
    assert "warning: account main: secret env:TELNYX_API_KEY" in result.stderr


def test_check_reports_every_problem_with_its_place(tmp_path: Path) -> None:
    rules = """\
rules:
  - name: low
    kind: balance
    below: {warning: ten}
    route: nowhere
  - name: low
    kind: audit
    colour: red
"""
    config = write_config(tmp_path, "http://127.0.0.1:9/v2", ["json://127.0.0.1:9/"], rules)
    (tmp_path / "rules" / "broken.yaml").write_text("rules:\n  - name: x\n    kind: [\n")
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 1
    rule_file = tmp_path / "rules" / "rules.yaml"
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"{tmp_path / 'rules' / 'broken.yaml'}:4:1: ") for line in lines)
    assert f"{rule_file}:4:22: rules[0].below.warning: Input should be a valid decimal" in lines
    assert any(
        line.startswith(f"{rule_file}:8:5: rules[1].colour: Extra inputs are not permitted")
        for line in lines
    )
    assert "Traceback" not in result.stderr


def test_check_finds_unknown_routes_and_duplicate_names(tmp_path: Path) -> None:
    rules = (
        GOOD_RULES + "  - {name: low, kind: audit}\n  - {name: other, kind: audit, route: nope}\n"
    )
    config = write_config(tmp_path, "http://127.0.0.1:9/v2", ["json://127.0.0.1:9/"], rules)
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 1
    rule_file = tmp_path / "rules" / "rules.yaml"
    assert f"{rule_file}:3:5: rule name 'low' is already used at {rule_file}:2:5" in result.stderr
    assert (
        f"{rule_file}:4:39: rules[2].route: route 'nope' is not defined in notify.routes "
        "(routes: ops)"
    ) in result.stderr


@pytest.mark.parametrize("command", ["once", "run", "check", "status"])
def test_missing_config_file_exits_2(tmp_path: Path, command: str) -> None:
    result = run_cli("--config", str(tmp_path / "nope.yaml"), command)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"account-watcher: config file {tmp_path / 'nope.yaml'} does not exist (use --config PATH)"
    )


@pytest.mark.parametrize("command", ["once", "run"])
def test_invalid_config_exits_2(tmp_path: Path, command: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("poll:\n  intervall: 5m\n")
    result = run_cli("--config", str(config), command)
    assert result.returncode == 2
    assert f"{config}:2:3: poll.intervall: Extra inputs are not permitted" in result.stderr
    assert "Traceback" not in result.stderr


def test_literal_api_key_is_refused_without_echo(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"accounts:\n  - name: main\n    api_key: {API_KEY}\n")
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 1
    assert "a literal API key is not allowed" in result.stderr
    assert API_KEY not in result.stderr + result.stdout


def test_unresolvable_secret_exits_2(tmp_path: Path, sim: SimServer) -> None:
    config = write_config(tmp_path, sim.base_url, ["env:NO_SUCH_URL_VAR"], GOOD_RULES)
    result = run_cli("--config", str(config), "once")
    assert result.returncode == 2
    assert "NO_SUCH_URL_VAR" in result.stderr and "is not set" in result.stderr
    assert sim.account.request_count() == 0


def test_unusable_state_database_exits_3(tmp_path: Path, sim: SimServer) -> None:
    config = write_config(tmp_path, sim.base_url, ["json://127.0.0.1:9/"], GOOD_RULES)
    (tmp_path / "state.db").write_bytes(b"this is not a database" * 100)
    result = run_cli("--config", str(config), "once")
    assert result.returncode == 3
    assert "state database" in result.stderr and "unusable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_status_before_first_run(tmp_path: Path, sim: SimServer) -> None:
    config = write_config(tmp_path, sim.base_url, ["json://127.0.0.1:9/"], GOOD_RULES)
    result = run_cli("--config", str(config), "status")
    assert result.returncode == 0
    assert "the daemon has not run" in result.stdout


def test_usage_error_exits_2() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2


def test_core_imports_no_io_library() -> None:
    code = (
        "import sys; import watcher.core.model, watcher.core.rules, "
        "watcher.core.lifecycle, watcher.core.render; "
        "bad = {'httpx', 'apprise', 'sqlite3', 'watcher.state.store', "
        "'watcher.providers.telnyx.client'} "
        "& set(sys.modules); "
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_reports_rule_errors_even_when_the_config_is_invalid(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9/v2", ["json://127.0.0.1:9/"], GOOD_RULES)
    config.write_text(config.read_text() + "typo: 1\n")
    (tmp_path / "rules" / "rules.yaml").write_text("rules:\n  - {name: low, kind: balance}\n")
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 1
    assert "typo: Extra inputs are not permitted" in result.stderr
    assert "give exactly one of `below` or `above`" in result.stderr
