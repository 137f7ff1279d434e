"""Shared by the Vonage end-to-end tests: the simulated account, the config they write,
the CLI they run (in real processes) and what they read back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, cli_env, established_state, run_cli

from watcher.providers.vonage.sim import VonageSimAccount, VonageSimServer
from watcher.state.ledger import Entry, Ledger
from watcher.state.store import Store

KEY = "abcd1234"
SECRET = "Vonage-Secret-9f3b1c"
TRX = "8ef2447e69604f642ae59363aa5f781b"
BALANCE, TOPUP, SETTINGS = "/account/get-balance", "/account/top-up", "/account/settings"
SECRETS, SUBS, AUDIT = (
    f"/accounts/{KEY}/secrets",
    f"/accounts/{KEY}/subaccounts",
    "/beta/audit/events",
)

LOW_CREDIT = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100, critical: 50}
    clear_above: 120
"""


@pytest.fixture(name="vonage")
def vonage_fixture() -> Iterator[VonageSimServer]:
    """A simulated Vonage account on 127.0.0.1 (balance 40.12345678, auto-reload on)."""
    account = VonageSimAccount(api_key=KEY, api_secret=SECRET, trx=TRX, auto_reload=True)
    with VonageSimServer(account) as server:
        yield server
        assert server.handler_errors == []


def vonage_account(server: VonageSimServer, *, currency: str = "GBP", extra: str = "") -> str:
    """The YAML of one Vonage entry of `accounts` named `eu` (`extra`: more lines)."""
    return (
        "  - name: eu\n"
        "    provider: vonage\n"
        f"    api_key: {KEY}\n"
        "    api_secret: env:VONAGE_API_SECRET\n"
        f"    currency: {currency}\n"
        f"    rest_url: {server.url}\n"
        f"    api_url: {server.url}\n"
        f"{extra}"
    )


def write_vonage_config(
    tmp_path: Path,
    accounts: str,
    urls: list[str],
    rules: str,
    *,
    poll: str = "{interval: 10s, timeout: 3s}",
    extra: str = "",
    established: bool = False,
) -> Path:
    """`config.yaml` with the given `accounts` entries, one route `ops`, the state in
    `tmp_path/state/state.db`, and `rules/rules.yaml`; out: the config's path."""
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "rules.yaml").write_text(rules)
    state = tmp_path / "state" / "state.db"
    state.parent.mkdir(exist_ok=True)
    if established:
        established_state(state)
    url_list = ", ".join(f'"{u}"' for u in urls)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"accounts:\n{accounts}poll: {poll}\nrules: [rules/*.yaml]\n"
        f"state: {{path: {state}}}\nnotify:\n  routes:\n    ops: {{urls: [{url_list}]}}\n{extra}"
    )
    return config


def env(**extra: str) -> dict[str, str]:
    return cli_env(VONAGE_API_SECRET=SECRET, VONAGE_TRX=TRX, **extra)


def once(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`once` in a real process: it must succeed, show no secret and no traceback."""
    result = run_cli("--config", str(config), *args, "once", env=env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_secret(result.stdout + result.stderr)
    assert "Traceback" not in result.stderr
    return result


def start(config: Path, command: str = "run", **extra: str) -> subprocess.Popen[str]:
    """`python -m watcher --config CONFIG COMMAND` as a child process, output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), command],
        env=env(**extra),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_no_secret(text: str) -> None:
    assert SECRET not in text
    assert TRX not in text


def requests(server: VonageSimServer, path: str, method: str | None = None) -> int:
    return server.account.request_count(path, method=method)


def low_credit_topup_rules() -> str:
    """`low-credit` (below 100 warning, 50 critical) with `topup: true`."""
    return LOW_CREDIT + "    topup: true\n"


TOPUP_CAPS = (
    '    topup: {enabled: true, trx: env:VONAGE_TRX, amount: "50.00", max_per_day: "100.00", '
    "min_interval: 1h}\n"
)


def ledger(tmp_path: Path) -> list[Entry]:
    """The ledger's entries in `tmp_path/state/state.db`, oldest first."""
    with Store.open(tmp_path / "state" / "state.db") as store:
        return Ledger(store).entries()
