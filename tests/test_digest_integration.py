"""The daily digest end to end: the real CLI (`once`, `run`, `digest`) against the
loopback simulator, apprise into a local HTTP receiver, a real SQLite state.

The daemon has no clock hook, so `notify.digest.at` is set relative to the real time:
a minute or two ago (the first cycle at or after it sends the digest), 3 h ago (the
start-up catch-up) or 13 h ago (too late: skipped). Near midnight UTC "two minutes ago"
is yesterday's time: that digest is yesterday's, still due, and the tests only read the
title's account, not its date.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import API_KEY, REPO, Receiver, cli_env, run_cli, wait_for, write_config

from watcher.providers.telnyx.sim import SimServer
from watcher.state.store import Store

LOW_CREDIT = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100, critical: 50}
    clear_above: 120
"""

DIGEST_TITLE = "[INFO] daily digest — main ("


def digest_config(tmp_path: Path, sim: SimServer, receiver: Receiver, ago: timedelta) -> Path:
    at = datetime.now(UTC) - ago
    extra = f'  digest:\n    at: "{at:%H:%M} UTC"\n    route: ops\n'
    return write_config(tmp_path, sim.base_url, [receiver.url], LOW_CREDIT, extra=extra)


def once(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    result = run_cli("--config", str(config), "once", env=cli_env(**env))
    assert result.returncode == 0, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    return result


def digests(receiver: Receiver) -> list[dict[str, object]]:
    return [m for m in receiver.messages if str(m.get("title", "")).startswith(DIGEST_TITLE)]


def recorded_days(tmp_path: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(tmp_path / "state.db") as conn:
        return list(conn.execute("SELECT day, state, messages FROM digests ORDER BY day"))


def test_digest_at_its_hour_once_and_not_again_after_a_restart(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = digest_config(tmp_path, sim, receiver, timedelta(minutes=2))
    sim.account.set_balance("45.00")

    once(config)  # the first cycle after `at`: the alert and the digest
    [digest] = digests(receiver)
    body = str(digest["message"])
    assert "main: balance 45.00 USD" in body
    assert "low-credit fired (critical): 45.00 USD" in body
    assert "nothing happened" not in body
    assert [state for _, state, _ in recorded_days(tmp_path)] == ["sent"]

    once(config)  # the next cycle: the day is done
    assert len(digests(receiver)) == 1

    proc = subprocess.Popen(  # a restart of the daemon, several cycles
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        env=cli_env(
            WATCHER_ALLOW_FAST_POLL="1", WATCHER_POLL__INTERVAL="1s", WATCHER_POLL__TIMEOUT="1s"
        ),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        before = sim.account.request_count("/balance")
        wait_for(lambda: sim.account.request_count("/balance") >= before + 3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert len(digests(receiver)) == 1
    assert "digest.enqueued" not in err
    assert len(recorded_days(tmp_path)) == 1


def test_quiet_account_gets_one_line(tmp_path: Path, sim: SimServer, receiver: Receiver) -> None:
    config = digest_config(tmp_path, sim, receiver, timedelta(minutes=1))
    once(config)
    [digest] = digests(receiver)
    assert str(digest["message"]).strip() == (
        "main: balance 500.00 USD; spend 0.00 USD in 24 h — nothing happened"
    )


def test_catch_up_at_start_up_when_less_than_12h_late(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = digest_config(tmp_path, sim, receiver, timedelta(hours=3))
    result = once(config)
    assert len(digests(receiver)) == 1
    assert "digest.enqueued" in result.stderr
    assert [state for _, state, _ in recorded_days(tmp_path)] == ["sent"]


def test_skipped_when_12h_late_or_more(tmp_path: Path, sim: SimServer, receiver: Receiver) -> None:
    config = digest_config(tmp_path, sim, receiver, timedelta(hours=13))
    result = once(config)
    assert digests(receiver) == []
    [(_, state, messages)] = recorded_days(tmp_path)
    assert (state, messages) == ("skipped", 0)
    assert "digest.skipped" in result.stderr
    once(config)  # logged and recorded once
    assert len(recorded_days(tmp_path)) == 1


def test_preview_prints_and_neither_sends_nor_records(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = digest_config(tmp_path, sim, receiver, timedelta(hours=13))  # not due
    once(config)
    result = run_cli("--config", str(config), "digest", "--preview")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(DIGEST_TITLE)
    assert "main: balance 500.00 USD" in result.stdout
    assert "nothing happened" in result.stdout
    assert receiver.messages == []
    assert [state for _, state, _ in recorded_days(tmp_path)] == ["skipped"]


def test_digest_sends_now_reports_each_url_and_does_not_mark_the_day(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = digest_config(tmp_path, sim, receiver, timedelta(hours=1))
    Store.open(tmp_path / "state.db").close()  # a state without samples, nothing sent
    result = run_cli("--config", str(config), "digest")
    assert result.returncode == 0, result.stderr
    assert "ops: json://127.0.0.1" in result.stdout and ": delivered" in result.stdout
    assert result.stdout.splitlines()[-1] == "1 delivered, 0 failed"
    assert len(digests(receiver)) == 1
    assert recorded_days(tmp_path) == []
    once(config)  # the scheduled digest still goes out
    assert len(digests(receiver)) == 2


def test_digest_unknown_account_exits_2(tmp_path: Path, sim: SimServer, receiver: Receiver) -> None:
    config = digest_config(tmp_path, sim, receiver, timedelta(hours=1))
    result = run_cli("--config", str(config), "digest", "--preview", "--account", "nope")
    assert result.returncode == 2
    assert result.stderr.strip() == "account-watcher: no account 'nope' (accounts: main)"
    assert "Traceback" not in result.stderr


def test_digest_account_filter(tmp_path: Path, sim: SimServer, receiver: Receiver) -> None:
    config = digest_config(tmp_path, sim, receiver, timedelta(hours=1))
    Store.open(tmp_path / "state.db").close()  # a state without samples, nothing sent
    result = run_cli("--config", str(config), "digest", "--preview", "--account", "main")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(DIGEST_TITLE) == 1


def test_unknown_digest_route_is_a_config_error(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    extra = '  digest:\n    at: "08:00 Mars/Olympus"\n    route: billing\n'
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW_CREDIT, extra=extra)
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 1
    assert f"{config}:16:9: notify.digest.at: unknown time zone 'Mars/Olympus'" in result.stderr
    config.write_text(config.read_text().replace("Mars/Olympus", "Europe/Berlin"))
    result = run_cli("--config", str(config), "check")
    assert result.returncode == 1
    assert (
        f"{config}:17:12: notify.digest.route: 'billing' is not a route in notify.routes "
        "(routes: ops)"
    ) in result.stderr
    assert run_cli("--config", str(config), "once").returncode == 2


def test_route_mute_delays_the_digest_and_min_severity_does_not_drop_it(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = digest_config(tmp_path, sim, receiver, timedelta(minutes=1))
    text = config.read_text()
    route = f"      urls: [{json.dumps(receiver.url)}]\n"
    muted = route + '      min_severity: critical\n      mute: ["00:00-24:00 UTC"]\n'
    config.write_text(text.replace(route, muted))
    result = once(config)
    assert digests(receiver) == []
    assert recorded_days(tmp_path) == []
    assert "digest.muted" in result.stderr
    config.write_text(text.replace(route, route + "      min_severity: critical\n"))
    once(config)  # the mute window is over: sent now, though the route takes critical only
    assert len(digests(receiver)) == 1
    assert [state for _, state, _ in recorded_days(tmp_path)] == ["sent"]


def test_two_processes_at_once_send_one_digest(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    """The due check and the record share the commit's BEGIN IMMEDIATE transaction."""
    config = digest_config(tmp_path, sim, receiver, timedelta(minutes=1))
    once(config)  # create the state first; then the day is due again for a new day only
    assert len(digests(receiver)) == 1
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("DELETE FROM digests")  # as if the day had not been sent yet
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(config), "once"],
            env=cli_env(),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert len(digests(receiver)) == 2  # the first one, and exactly one more
    assert len(recorded_days(tmp_path)) == 1


def test_digest_send_failure_exits_1(tmp_path: Path, sim: SimServer, receiver: Receiver) -> None:
    config = digest_config(tmp_path, sim, receiver, timedelta(hours=1))
    Store.open(tmp_path / "state.db").close()  # a state without samples, nothing sent
    receiver.status = 500
    result = run_cli("--config", str(config), "digest")
    assert result.returncode == 1
    assert "FAILED" in result.stdout
    assert result.stdout.splitlines()[-1] == "0 delivered, 1 failed"


def test_digest_without_a_state_says_so_and_creates_none(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = digest_config(tmp_path, sim, receiver, timedelta(hours=1))
    for args in (["--preview"], []):
        result = run_cli("--config", str(config), "digest", *args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("no state yet at ")
    assert not (tmp_path / "state.db").exists()
    assert receiver.messages == []
