"""Helpers shared by the top-up tests: the config and rule file they write, the titles they
expect, what they read back (ledger states, POSTs to the simulator) and the real daemon
process they start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO, cli_env, established_state

from watcher.providers.telnyx.sim import SimServer
from watcher.state.ledger import EntryState, Ledger
from watcher.state.store import Store

TOPUP = "/payment/stored_payment_transactions"
PAID = "[INFO] top-up paid 100.00 USD — main"
FAILED = "[CRITICAL] top-up failed 100.00 USD — main"
UNKNOWN = "[CRITICAL] top-up outcome unknown 100.00 USD — main"


def low_credit_rules(*, clear_above: int | None = None) -> str:
    """The rule file with one rule, `low-credit` (balance below 100 warning, 50 critical,
    `topup: true`), optionally with `clear_above`; out: its YAML text."""
    clear = "" if clear_above is None else f"    clear_above: {clear_above}\n"
    return (
        "rules:\n"
        "  - name: low-credit\n"
        "    kind: balance\n"
        "    below: {warning: 100, critical: 50}\n"
        f"{clear}"
        "    topup: true\n"
    )


RULES = low_credit_rules()


def topup_caps(max_per_day: str, *, enabled: bool = True, **extra: str) -> str:
    """`accounts[].topup` as YAML flow text: 100.00 USD at most once an hour and
    `max_per_day` a day; each of `extra` is one more field (its value quoted)."""
    fields = [
        f"enabled: {str(enabled).lower()}",
        'amount: "100.00"',
        f'max_per_day: "{max_per_day}"',
        "min_interval: 1h",
        *(f"{name}: {json.dumps(value)}" for name, value in extra.items()),
    ]
    return "{" + ", ".join(fields) + "}"


def write_topup_config(
    tmp_path: Path,
    topup: str,
    *,
    sim: SimServer | None = None,
    poll: str | None = None,
    notify_url: str | None = None,
    rules: str = RULES,
    established: bool = True,
    state: Path | None = None,
) -> Path:
    """Write `rules/rules.yaml` (`rules`) and `config.yaml` for the account `main` into
    `tmp_path`, the state in `state` (default `tmp_path/state.db`); out: the config's path.

    `topup` is the YAML text of the account's `topup` (line 4, column 12 without `sim`:
    where `check` errors point); with `sim`, its `base_url`; `poll` is the YAML text of
    the `poll` section; `notify_url` makes one route, `ops`. What is not given is left out.
    With `established` (the default) the state exists and is not fresh
    (`conftest.established_state`), so the first cycle may pay.
    """
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "rules.yaml").write_text(rules)
    lines = ["accounts:", "  - name: main", "    api_key: env:TELNYX_API_KEY"]
    if sim is not None:
        lines.append(f"    base_url: {sim.base_url}")
    lines.append(f"    topup: {topup}")
    if poll is not None:
        lines.append(f"poll: {poll}")
    state = tmp_path / "state.db" if state is None else state
    lines += ["rules: [rules/*.yaml]", f"state: {{path: {state}}}"]
    if notify_url is not None:
        lines += ["notify:", "  routes:", f'    ops: {{urls: ["{notify_url}"]}}']
    config = tmp_path / "config.yaml"
    config.write_text("".join(f"{line}\n" for line in lines))
    if established:
        state.parent.mkdir(parents=True, exist_ok=True)
        established_state(state)
    return config


def ledger_states(tmp_path: Path) -> list[EntryState]:
    """The states of the ledger's entries in `tmp_path/state.db`, oldest first."""
    with Store.open(tmp_path / "state.db") as store:
        return [e.state for e in Ledger(store).entries()]


def posts(sim: SimServer) -> int:
    """How many top-up POSTs the simulator has received."""
    return sim.account.request_count(TOPUP, method="POST")


def start(config: Path, command: str, **env: str) -> subprocess.Popen[str]:
    """`python -m watcher --config CONFIG COMMAND` as a child process (extra `env` on top of
    `cli_env()`), its stdout and stderr piped as text; the caller waits for or kills it."""
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), command],
        env=cli_env(**env),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
