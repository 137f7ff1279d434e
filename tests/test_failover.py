"""Two real `run` processes on one PostgreSQL state (DESIGN §10): one leads, the other
stands by; a killed leader is replaced within three intervals; a paused one that wakes
up after the takeover neither pays nor delivers (fencing), and stands down.

The simulator, the receiver and the PostgreSQL server are real; the daemons are real
child processes, told apart by the pid in the lease's holder (`host:pid:random`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import API_KEY, REPO, Receiver, cli_env, wait_for
from topup_support import TOPUP

from watcher.providers.simkit.parts import Fault
from watcher.providers.telnyx.sim import SimAccount, SimServer

SECOND_KEY = "KEYsecond0123456789abcdefSECRET"
INTERVAL = 1.0  # seconds: poll.interval of both daemons
RULES = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100, critical: 50}
    topup: true
"""


def write_config(
    tmp_path: Path, sim: SimServer, receiver: Receiver, *, second: bool = False
) -> Path:
    """Both daemons' config: the account `main` (and with `second` the account `second`,
    at the same simulator), a top-up of 100.00 at most once an hour each, the state on
    PostgreSQL."""
    topup = '{enabled: true, amount: "100.00", max_per_day: "1000.00", min_interval: 1h}'
    accounts = f"""\
  - name: main
    api_key: env:TELNYX_API_KEY
    base_url: {sim.base_url}
    topup: {topup}
"""
    if second:
        accounts += f"""\
  - name: second
    api_key: env:SECOND_KEY
    base_url: {sim.base_url}
    topup: {topup}
"""
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "rules.yaml").write_text(RULES)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
accounts:
{accounts}poll: {{interval: {INTERVAL:g}s, timeout: 1s}}
rules: [rules/*.yaml]
state: {{url: "env:WATCHER_STATE_URL"}}
notify:
  routes:
    ops: {{urls: ["{receiver.url}"]}}
log: {{format: json, level: info}}
"""
    )
    return config


def established(url: str) -> None:
    """The shared state exists and is not fresh, so the first leader may pay."""
    from datetime import UTC, datetime

    from watcher.state.ledger import Ledger
    from watcher.state.store import open_store

    with open_store(url) as store:
        ledger = Ledger(store)
        ledger.recover(datetime.now(UTC))
        ledger.resume()


class Daemon:
    """One `run` child process; its stderr (JSON lines) is collected by a thread."""

    def __init__(self, config: Path, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(config), "run"],
            env=cli_env(WATCHER_ALLOW_FAST_POLL="1", WATCHER_STATE_URL=url, SECOND_KEY=SECOND_KEY),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def records(self) -> list[dict[str, object]]:
        out = []
        for line in list(self.lines):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def events(self) -> list[str]:
        return [str(record.get("event")) for record in self.records()]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def account_posts(account: SimAccount) -> int:
    return account.request_count(TOPUP, method="POST")


def holder_pid(url: str) -> int | None:
    """The pid of the lease's holder while its lease is valid (by the database's clock)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT holder FROM leader_lease WHERE expires_at > clock_timestamp()"
        ).fetchone()
    return None if row is None else int(str(row[0]).split(":")[1])


@pytest.fixture
def pair(
    tmp_path: Path, sim: SimServer, receiver: Receiver, pg_url: str
) -> Iterator[tuple[Path, str]]:
    established(pg_url)
    yield write_config(tmp_path, sim, receiver), pg_url


def test_one_leads_and_a_killed_leader_is_replaced_within_three_intervals(
    pair: tuple[Path, str], sim: SimServer
) -> None:
    config, url = pair
    first = Daemon(config, url)
    try:
        wait_for(lambda: holder_pid(url) == first.pid)
        second = Daemon(config, url)
        try:
            wait_for(lambda: "leader.standby" in second.events() or len(second.lines) > 3)
            balance_reads = sim.account.request_count("/balance")
            time.sleep(3 * INTERVAL)  # the standby does not poll
            assert holder_pid(url) == first.pid
            first.process.kill()
            killed = time.monotonic()
            wait_for(lambda: holder_pid(url) == second.pid, timeout=10)
            took = time.monotonic() - killed
            assert took <= 3 * INTERVAL + INTERVAL / 4 + 1.0
            assert sim.account.request_count("/balance") > balance_reads
        finally:
            second.stop()
    finally:
        first.stop()


def test_a_leader_paused_mid_cycle_is_fenced_out_when_it_wakes(
    tmp_path: Path, receiver: Receiver, pg_url: str
) -> None:
    """Paused in the middle of its top-ups (its first POST held at the simulator), the
    leader loses the lease; the new leader reconciles that `sending` entry and pays the
    other account. Woken up, the old leader records its POST's outcome (it happened) but
    its next top-up decision is fenced out: it pays nothing more, and stands down."""
    main = SimAccount(api_key=API_KEY, balance="500.00")
    second = SimAccount(api_key=SECOND_KEY, balance="500.00")
    with SimServer(main, accounts=[second]) as sim:
        established(pg_url)
        config = write_config(tmp_path, sim, receiver, second=True)
        first = Daemon(config, pg_url)
        standby: Daemon | None = None
        try:
            wait_for(lambda: holder_pid(pg_url) == first.pid)
            standby = Daemon(config, pg_url)
            wait_for(lambda: "leader.standby" in standby.events())
            release = threading.Event()
            for account in (main, second):
                account.inject_fault(TOPUP, Fault.hold(release, seconds=20))
                account.set_balance("20.00")  # critical: both are to be topped up
            wait_for(lambda: account_posts(main) + account_posts(second) == 1)
            first.process.send_signal(signal.SIGSTOP)  # inside its first POST
            paid_by_old, other = (main, second) if account_posts(main) else (second, main)
            wait_for(lambda: holder_pid(pg_url) == standby.pid, timeout=10)
            wait_for(lambda: account_posts(other) == 1, timeout=10)  # the new leader's
            release.set()
            first.process.send_signal(signal.SIGCONT)
            wait_for(lambda: "leader.deposed" in first.events(), timeout=10)
            time.sleep(3 * INTERVAL)
            assert (account_posts(paid_by_old), account_posts(other)) == (1, 1)
            [deposed] = [e for e in first.records() if e.get("event") == "leader.deposed"]
            assert "no longer holds the lease" in str(deposed["why"])
            assert holder_pid(pg_url) == standby.pid
        finally:
            first.stop()
            if standby is not None:
                standby.stop()
