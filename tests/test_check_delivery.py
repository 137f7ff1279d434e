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
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import API_KEY, REPO, Receiver, cli_env, run_cli, wait_for

from watcher.cli.check import cmd_check
from watcher.config.settings import load_settings
from watcher.providers.telnyx.sim import SimServer
from watcher.state.ledger import EntryState, Ledger, NewEntry
from watcher.state.store import Store

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


# ---------------------------------------------------------------- 3: nobody to notify

NO_ROUTE = (
    "notify.routes: no notification route is defined, so no alert can be delivered (neither "
    "the rules' nor the built-in watcher-source-down and top-up alerts); add one, e.g. "
    "notify: {routes: {ops: {urls: [env:OPS_URL]}}}"
)


@pytest.mark.parametrize(
    ("config", "place"),
    [
        ("accounts: [{name: main}]\nrules: [rules/*.yaml]\n", "1:1"),
        ("rules: [rules/*.yaml]\nnotify:\n  repeat_interval: 1h\n", "2:1"),
        ("rules: [rules/*.yaml]\nnotify:\n  routes: {}\n", "3:11"),
        ("rules: [rules/*.yaml]\nnotify:\n", "2:1"),
    ],
    ids=["no-notify-section", "notify-without-routes", "empty-routes", "null-notify"],
)
def test_check_fails_when_no_route_is_defined(tmp_path: Path, config: str, place: str) -> None:
    path = write(tmp_path, config)
    code, lines, out = check(path)
    assert code == 1, lines
    assert errors(lines) == [f"{path}:{place}: {NO_ROUTE}"]
    assert out == ""


def test_check_of_an_empty_config_says_why_it_cannot_work(tmp_path: Path) -> None:
    path = write(tmp_path, "", rules=None)
    code, lines, _ = check(path)
    assert code == 1
    assert errors(lines) == [
        f"{path}:1:1: rules: the default pattern 'rules/*.yaml' matches no file; write "
        "rules: [] if this config has no rules on purpose",
        f"{path}:1:1: {NO_ROUTE}",
    ]


def test_check_fails_when_built_in_alerts_have_no_route(tmp_path: Path) -> None:
    config = """\
rules: [rules/*.yaml]
notify:
  routes:
    ops: {urls: ["json://127.0.0.1:9/ops"]}
    billing: {urls: ["json://127.0.0.1:9/billing"]}
"""
    path = write(
        tmp_path, config, "rules:\n  - {name: low, kind: balance, below: 10, route: ops}\n"
    )
    code, lines, _ = check(path)
    assert code == 1
    assert errors(lines) == [
        f"{path}:3:3: notify.default_route: not set, and there is more than one route: the "
        "built-in alerts (watcher-source-down, notices of top-ups whose rule is gone) have no "
        "route; set notify.default_route to one of billing, ops"
    ]


def test_check_fails_when_no_route_of_a_rule_takes_its_severity(tmp_path: Path) -> None:
    config = """\
rules: [rules/*.yaml]
notify:
  default_route: ops
  routes:
    ops: {urls: ["json://127.0.0.1:9/ops"]}
    pager: {urls: ["json://127.0.0.1:9/pager"], min_severity: critical}
"""
    rules = """\
rules:
  - {name: low, kind: balance, below: 10, severity: warning, route: pager}
  - {name: lower, kind: balance, below: {warning: 10, critical: 5}, route: pager}
  - {name: info, kind: audit, severity: info, route: [pager, ops]}
"""
    path = write(tmp_path, config, rules)
    code, lines, _ = check(path)
    rule_file = tmp_path / "rules" / "rules.yaml"
    assert code == 1
    assert errors(lines) == [
        f"{rule_file}:2:69: rules[0].route: rule 'low' fires at warning only, below the "
        "min_severity of every route it goes to (pager: critical): it can never notify anyone"
    ]


def test_check_fails_when_a_rules_glob_matches_nothing(tmp_path: Path) -> None:
    config = (
        'rules: [rules/*.yaml, "rules.d/*.yaml"]\nnotify:\n  routes:\n    ops: {urls: [json://h]}\n'
    )
    path = write(tmp_path, config)
    code, lines, _ = check(path)
    assert code == 1
    assert errors(lines) == [
        f"{path}:1:23: rules[1]: pattern 'rules.d/*.yaml' matches no file; write rules: [] if "
        "this config has no rules on purpose"
    ]


def test_check_accepts_rules_empty_on_purpose(tmp_path: Path) -> None:
    path = write(tmp_path, "rules: []\nnotify:\n  routes:\n    ops: {urls: [json://h]}\n", None)
    code, lines, out = check(path)
    assert (code, lines) == (0, [])
    assert out.startswith(f"ok: {path}: 1 account(s), 0 rule file(s), 0 rule(s)")


def test_once_without_a_route_still_runs_and_says_why(tmp_path: Path, sim: SimServer) -> None:
    config = (
        f"accounts: [{{name: main, base_url: '{sim.base_url}'}}]\nrules: []\n"
        f"poll: {{interval: 10s, timeout: 3s}}\nstate: {{path: {tmp_path / 'state.db'}}}\n"
    )
    result = run_cli("--config", str(write(tmp_path, config, None)), "once")
    assert result.returncode == 0, result.stderr
    assert "no notification route is defined" in result.stderr


# ------------------------------------------------------ 4: references to unusable URLs

ROUTE_REF = """\
accounts: [{{name: main, base_url: "{base}"}}]
poll: {{interval: 10s, timeout: 3s}}
rules: [rules/*.yaml]
state: {{path: {state}}}
notify:
  routes:
    ops:
      urls: ["json://127.0.0.1:9/ok", "{ref}"]
"""


def ref_config(tmp_path: Path, ref: str, base: str = "http://127.0.0.1:9/v2") -> Path:
    text = ROUTE_REF.format(base=base, state=tmp_path / "state.db", ref=ref)
    return write(tmp_path, text)


@pytest.mark.parametrize(
    ("ref", "value"),
    [
        ("env:HOOK_URL", f"not a url {PASSWORD}"),
        ("env:HOOK_URL", f"foo://user:{PASSWORD}@host/x"),
        ("file:hook.url", f"mailtos://{PASSWORD}"),
    ],
    ids=["not-a-url", "unknown-scheme", "missing-parts"],
)
def test_check_validates_the_value_a_reference_resolves_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ref: str, value: str
) -> None:
    path = ref_config(tmp_path, ref)
    monkeypatch.setenv("HOOK_URL", value)
    (tmp_path / "hook.url").write_text(value + "\n")
    code, lines, _ = check(path)
    assert code == 1
    assert errors(lines) == [
        f"{path}:8:39: notify.routes.ops.urls[1]: route ops: {ref} does not hold a notification "
        "URL apprise understands (unknown scheme or missing parts; see the apprise wiki)"
    ]
    assert PASSWORD not in "\n".join(lines)


def test_check_only_warns_about_an_unset_reference(tmp_path: Path) -> None:
    code, lines, _ = check(ref_config(tmp_path, "env:HOOK_URL"))
    assert code == 0
    assert lines == [
        "warning: route ops: secret env:HOOK_URL: environment variable HOOK_URL is not set"
    ]


@pytest.mark.parametrize("command", ["once", "notify-test"])
def test_start_up_names_the_route_and_reference_of_an_unusable_url(
    tmp_path: Path, sim: SimServer, command: str
) -> None:
    path = ref_config(tmp_path, "env:HOOK_URL", base=sim.base_url)
    result = run_cli("--config", str(path), command, env=cli_env(HOOK_URL=f"foo://{PASSWORD}@h"))
    assert result.returncode == 2
    assert (
        f"{path}:8:39: notify.routes.ops.urls[1]: route ops: env:HOOK_URL does not hold a "
        "notification URL apprise understands"
    ) in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert sim.account.request_count() == 0


def test_reload_names_the_route_and_reference_of_an_unusable_url(
    tmp_path: Path, sim: SimServer
) -> None:
    path = ref_config(tmp_path, "json://127.0.0.1:9/other", base=sim.base_url)
    log = tmp_path / "stderr.log"
    env = cli_env(HOOK_URL=f"foo://{PASSWORD}@h", WATCHER_ALLOW_FAST_POLL="1")
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(path), "run"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_for(lambda: "cycle.finished" in log.read_text())
        ref_config(tmp_path, "env:HOOK_URL", base=sim.base_url)
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "config.reload_" in log.read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    events = [json.loads(line) for line in log.read_text().splitlines() if line]
    (failed,) = [e for e in events if e["event"] == "config.reload_failed"]
    assert failed["errors"] == [
        f"{path}:8:39: notify.routes.ops.urls[1]: route ops: env:HOOK_URL does not hold a "
        "notification URL apprise understands (unknown scheme or missing parts; see the "
        "apprise wiki)"
    ]
    assert PASSWORD not in log.read_text()
    assert process.returncode == 0


# ------------------------------------------------------- 5: a password in a literal URL


def test_check_warns_about_a_password_in_a_literal_url(tmp_path: Path) -> None:
    config = f"""\
rules: [rules/*.yaml]
notify:
  routes:
    ops:
      urls:
        - json://127.0.0.1:9/hook
        - "mailtos://alerts:{PASSWORD}@smtp.example.com?to=ops@example.com"
        - env:OPS_URL
"""
    path = write(tmp_path, config)
    code, lines, out = check(path)
    assert code == 0, lines
    assert (
        f"warning: {path}:7:11: notify.routes.ops.urls[1]: this mailtos:// URL holds a "
        "password in the config file; move the whole URL into a credential (e.g. a file "
        "/etc/credstore/ops_url with LoadCredential=ops_url in the unit) and write "
        "credential:ops_url here (or env:NAME, file:PATH)"
    ) in lines
    assert sum("holds a" in line for line in lines) == 1
    assert PASSWORD not in "\n".join(lines) + out


def test_check_warns_about_a_token_in_a_literal_url(tmp_path: Path) -> None:
    config = "rules: [rules/*.yaml]\nnotify:\n  routes:\n    ops: {urls: [slack://TokenA/TokenB/TokenC]}\n"
    path = write(tmp_path, config)
    code, lines, _ = check(path)
    assert code == 0
    assert [line for line in lines if "holds a" in line] == [
        f"warning: {path}:4:18: notify.routes.ops.urls[0]: this slack:// URL holds a token "
        "in the config file; move the whole URL into a credential (e.g. a file "
        "/etc/credstore/ops_url with LoadCredential=ops_url in the unit) and write "
        "credential:ops_url here (or env:NAME, file:PATH)"
    ]
    assert "TokenB" not in "\n".join(lines)


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
