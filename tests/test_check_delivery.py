"""`check` judges whether a config can deliver (issue 9, defects 3, 4, 5 and 11).

- 3: a config that can notify nobody fails `check` (no route; built-in alerts without a
  default route; a rule whose severities no route of it accepts; a rules glob that
  matches nothing unless `rules: []`).
- 4: a reference that resolves to an unusable notification URL fails `check`, and
  `once` / `notify-test` name the route and the reference (never the value).
- 5: a literal password (or token) inside a notification URL is a warning with its place.
- 11: `WATCHER_ALLOW_FAST_POLL=1` is honoured by every command, not only `run` / `once`.

`check` runs in-process (`cmd_check`), the other commands as real processes.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import API_KEY, Receiver, cli_env, run_cli

from watcher.cli import cmd_check
from watcher.ledger import EntryState, Ledger, NewEntry
from watcher.settings import load_settings
from watcher.sim import SimServer
from watcher.store import Store

RULES = "rules:\n  - {name: low, kind: balance, below: 10}\n"
PASSWORD = "hunter2PW"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WATCHER_") or name in {"CREDENTIALS_DIRECTORY", "HOOK_URL"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("TELNYX_API_KEY", API_KEY)


def write(tmp_path: Path, config: str, rules: str | None = RULES) -> Path:
    if rules is not None:
        (tmp_path / "rules").mkdir(exist_ok=True)
        (tmp_path / "rules" / "rules.yaml").write_text(rules)
    path = tmp_path / "config.yaml"
    path.write_text(config)
    return path


def check(path: Path) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    code = cmd_check(path, out, err)
    return code, err.getvalue().splitlines(), out.getvalue()


def errors(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("warning: ")]


# ------------------------------------------------ 11: one fast-poll rule for all commands

FAST = """\
accounts:
  - name: main
    base_url: "{base}"
    topup: {{enabled: true, amount: "100.00"}}
poll: {{interval: 5s}}
rules: [rules/*.yaml]
state: {{path: {state}}}
notify:
  routes:
    ops: {{urls: ["{url}"]}}
"""


def test_fast_poll_is_read_from_the_environment_by_load_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "poll: {interval: 5s}\n", None)
    poll = load_settings(path, environ={"WATCHER_ALLOW_FAST_POLL": "1"}).settings.poll
    assert poll.interval == timedelta(seconds=5)


def test_every_command_accepts_a_fast_poll_when_allowed(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    text = FAST.format(base=sim.base_url, state=tmp_path / "state.db", url=receiver.url)
    path = write(tmp_path, text)
    with Store.open(tmp_path / "state.db") as store:
        ledger = Ledger(store)
        new = NewEntry("main", Decimal("100.00"), "USD", "low", "low is critical")
        entry = ledger.add(new, EntryState.SENDING, datetime.now(UTC))
        ledger.finish(entry.id, EntryState.UNKNOWN, datetime.now(UTC), error="timed out")
    env = cli_env(WATCHER_ALLOW_FAST_POLL="1")
    commands = [
        ["check"],
        ["status"],
        ["topups"],
        ["notify-test"],
        ["silence", "list"],
        ["topups", "settle", str(entry.id), "--as", "failed", "--reason", "portal: no charge"],
        ["once"],
    ]
    for command in commands:
        result = run_cli("--config", str(path), *command, env=env)
        assert result.returncode == 0, (command, result.stderr)
    with Store.open(tmp_path / "state.db") as store:
        settled = Ledger(store).get(entry.id)
    assert settled is not None and settled.state is EntryState.FAILED
    refused = run_cli("--config", str(path), "status")
    assert refused.returncode == 2
    assert "poll.interval: must be at least 10s (got 5s)" in refused.stderr
