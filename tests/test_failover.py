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
from conftest import REPO, Receiver, cli_env, wait_for
from topup_support import TOPUP, posts

from watcher.providers.simkit.parts import Fault
from watcher.providers.telnyx.sim import SimServer

INTERVAL = 1.0  # seconds: poll.interval of both daemons
RULES = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100, critical: 50}
    topup: true
"""


def write_config(tmp_path: Path, sim: SimServer, receiver: Receiver) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "rules.yaml").write_text(RULES)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
accounts:
  - name: main
    api_key: env:TELNYX_API_KEY
    base_url: {sim.base_url}
    topup: {{enabled: true, amount: "100.00", max_per_day: "1000.00", min_interval: 1s}}
poll: {{interval: {INTERVAL:g}s, timeout: 1s}}
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
            env=cli_env(WATCHER_ALLOW_FAST_POLL="1", WATCHER_STATE_URL=url),
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

    def events(self) -> list[str]:
        out = []
        for line in list(self.lines):
            with contextlib.suppress(ValueError):
                out.append(str(json.loads(line).get("event")))
        return out

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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


def test_a_paused_leader_that_wakes_after_the_takeover_neither_pays_nor_sends(
    pair: tuple[Path, str], sim: SimServer, receiver: Receiver
) -> None:
    config, url = pair
    first = Daemon(config, url)
    second: Daemon | None = None
    try:
        wait_for(lambda: holder_pid(url) == first.pid)
        wait_for(lambda: sim.account.request_count("/balance") >= 2)
        second = Daemon(config, url)
        wait_for(lambda: len(second.lines) > 0)
        release = threading.Event()
        sim.account.inject_fault("/balance", Fault.hold(release, seconds=20))
        sim.account.set_balance("20.00")  # critical: the leader will want to pay
        held = sim.account.request_count("/balance")
        wait_for(lambda: sim.account.request_count("/balance") > held)  # the leader's read waits
        first.process.send_signal(signal.SIGSTOP)
        release.set()  # its answer (20.00) waits in the paused leader's socket
        wait_for(lambda: holder_pid(url) == second.pid, timeout=10)
        wait_for(lambda: posts(sim) == 1, timeout=10)  # the new leader pays once
        wait_for(lambda: any("top-up paid" in t for t in receiver.titles), timeout=10)
        delivered = list(receiver.titles)
        first.process.send_signal(signal.SIGCONT)
        wait_for(lambda: "leader.deposed" in first.events(), timeout=10)
        time.sleep(3 * INTERVAL)
        assert posts(sim) == 1, sim.account.requests
        assert sim.account.request_count(TOPUP, method="POST") == 1
        assert receiver.titles[: len(delivered)] == delivered
        assert len(receiver.titles) == len(set(receiver.titles)), receiver.titles
        assert holder_pid(url) == second.pid
    finally:
        first.stop()
        if second is not None:
            second.stop()
