"""Two real `run` processes on one PostgreSQL state (DESIGN §10): one leads, the other
stands by; a killed leader is replaced within three intervals; a paused one that wakes
up after the takeover neither pays nor delivers (fencing), and stands down.

The simulator, the receiver and the PostgreSQL server are real; the daemons are real
child processes, told apart by the pid in the lease's holder (`host:pid:random`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest
from conftest import API_KEY, REPO, Receiver, cli_env, established_state, wait_for
from notify_socket import listening
from topup_support import TOPUP, posts

from watcher.providers.simkit.parts import Fault, free_port
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
    tmp_path: Path,
    sim: SimServer,
    receiver: Receiver,
    *,
    second: bool = False,
    min_interval: str = "1h",
    interval: float = INTERVAL,
) -> Path:
    """Both daemons' config: the account `main` (and with `second` the account `second`,
    at the same simulator), a top-up of 100.00 at most once an hour each, the state on
    PostgreSQL."""
    topup = (
        '{enabled: true, amount: "100.00", max_per_day: "100000.00", '
        f"min_interval: {min_interval}}}"
    )
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
{accounts}poll: {{interval: {interval:g}s, timeout: {interval:g}s}}
rules: [rules/*.yaml]
state: {{url: "env:WATCHER_STATE_URL"}}
notify:
  routes:
    ops: {{urls: ["{receiver.url}"]}}
log: {{format: json, level: info}}
"""
    )
    return config


class Daemon:
    """One `run` child process; its stderr (JSON lines) is collected by a thread."""

    def __init__(self, config: Path, url: str, **env: str) -> None:
        self.config = config
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(config), "run"],
            env=cli_env(
                WATCHER_ALLOW_FAST_POLL="1", WATCHER_STATE_URL=url, SECOND_KEY=SECOND_KEY, **env
            ),
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
        with (self.config.parent / f"daemon-{self.pid}.log").open("w") as kept:
            for line in self.process.stderr:
                self.lines.append(line)
                kept.write(line)
                kept.flush()

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
    established_state(pg_url)
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


def test_the_standby_says_so_in_status_and_healthz_and_a_clean_stop_hands_over(
    pair: tuple[Path, str],
) -> None:
    config, url = pair
    ports = free_port(), free_port()
    with listening() as told_first, listening() as told_second:
        first = Daemon(
            config, url, NOTIFY_SOCKET=told_first.path, WATCHER_WEB__LISTEN=f"127.0.0.1:{ports[0]}"
        )
        second: Daemon | None = None
        try:
            wait_for(lambda: holder_pid(url) == first.pid)
            second = Daemon(
                config,
                url,
                NOTIFY_SOCKET=told_second.path,
                WATCHER_WEB__LISTEN=f"127.0.0.1:{ports[1]}",
            )
            told_second.wait(lambda: any(s.startswith("standby: ") for s in told_second.statuses()))
            assert told_second.with_field("READY", "1")
            [status] = {s for s in told_second.statuses() if s.startswith("standby: ")}
            assert re.fullmatch(
                rf"standby: \S+:{first.pid}:\w+ leads \(lease expires in \d+s\)", status
            )
            assert healthz(ports[1]) == (200, status)
            code, text = healthz(ports[0])
            assert code == 200 and text.startswith("ok: "), text
            first.process.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            assert first.process.wait(timeout=15) == 0
            wait_for(lambda: holder_pid(url) == second.pid, timeout=10)
            assert time.monotonic() - stopped < 1.0 + INTERVAL  # released: no waiting for the TTL
            told_second.wait(lambda: "firing" in told_second.statuses()[-1])
            code, text = healthz(ports[1])
            assert code == 200 and text.startswith(("ok: ", "starting: ")), text
        finally:
            first.stop()
            if second is not None:
                second.stop()


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return int(answer.status), answer.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()


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
        established_state(pg_url)
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
            woken = len(first.events())
            first.process.send_signal(signal.SIGCONT)
            wait_for(lambda: "leader.deposed" in first.events(), timeout=10)
            time.sleep(3 * INTERVAL)
            assert (account_posts(paid_by_old), account_posts(other)) == (1, 1)
            after = first.events()[woken:]
            assert "notify.delivered" not in after, after  # it sent nothing either
            assert "cycle.finished" not in after, after  # its cycle committed nothing
            [deposed] = [e for e in first.records() if e.get("event") == "leader.deposed"]
            assert "no longer holds the lease" in str(deposed["why"])
            assert holder_pid(pg_url) == standby.pid
        finally:
            first.stop()
            if standby is not None:
                standby.stop()


# -- fifty random kills and pauses ----------------------------------------------------

POINTS = 50
FAST = 0.5  # seconds: the interval here (a lease of 1.5 s)


class Chaos:
    """Daemons on one state, and the random blows: SIGKILL (a new daemon replaces the
    killed one) or SIGSTOP for a while (a timer sends SIGCONT)."""

    def __init__(self, config: Path, url: str, rng: random.Random) -> None:
        self.config, self.url, self.rng = config, url, rng
        self.daemons = [Daemon(config, url), Daemon(config, url)]
        self.stopped: set[int] = set()
        self.timers: list[threading.Timer] = []
        self.in_doubt: list[tuple[int, str]] = []  # targets a killed daemon had claimed
        self.log: list[str] = []

    def target(self) -> Daemon:
        leader = holder_pid(self.url)
        running = [d for d in self.daemons if d.pid not in self.stopped]
        for daemon in running:
            if daemon.pid == leader:
                return daemon
        return self.rng.choice(running or self.daemons)

    def blow(self) -> None:
        daemon = self.target()
        if self.rng.random() < 0.3 or daemon.pid in self.stopped:
            daemon.process.kill()
            daemon.process.wait()
            self.stopped.discard(daemon.pid)
            self.in_doubt += claimed_by(self.url, daemon.pid)
            self.daemons.remove(daemon)
            self.daemons.append(Daemon(self.config, self.url))
            self.log.append(f"kill {daemon.pid}")
            return
        seconds = self.rng.uniform(0.2, 2.5)
        daemon.process.send_signal(signal.SIGSTOP)
        self.stopped.add(daemon.pid)
        timer = threading.Timer(seconds, self._resume, args=(daemon,))
        timer.start()
        self.timers.append(timer)
        self.log.append(f"stop {daemon.pid} {seconds:.2f}s")

    def _resume(self, daemon: Daemon) -> None:
        with contextlib.suppress(ProcessLookupError):
            daemon.process.send_signal(signal.SIGCONT)
        self.stopped.discard(daemon.pid)

    def calm(self) -> None:
        for timer in self.timers:
            timer.cancel()
        for daemon in self.daemons:
            self._resume(daemon)

    def close(self) -> None:
        self.calm()
        for daemon in self.daemons:
            daemon.stop()


def claimed_by(url: str, pid: int) -> list[tuple[int, str]]:
    """Targets claimed (not yet recorded) by the daemon with `pid`."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT message_id, url_id FROM outbox_targets "
            "WHERE state = 'pending' AND claimed_by LIKE %s",
            (f"%:{pid}:%",),
        ).fetchall()
    return [(int(m), str(u)) for m, u in rows]


def drain(account: SimAccount, done: threading.Event, resets: list[int]) -> None:
    """Make the balance critical again some time after each top-up (a new decision)."""
    while not done.wait(0.2):
        if account.balance().balance >= 100:
            time.sleep(0.5)
            resets.append(account.request_count(TOPUP, method="POST"))
            account.set_balance("20.00")


def test_fifty_random_kills_and_pauses_pay_once_per_decision_and_send_once_per_url(
    tmp_path: Path, sim: SimServer, receiver: Receiver, pg_url: str
) -> None:
    seed = int(os.environ.get("FAILOVER_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    established_state(pg_url)
    config = write_config(tmp_path, sim, receiver, min_interval="1s", interval=FAST)
    sim.account.set_balance("20.00")
    done, resets = threading.Event(), list[int]()
    drainer = threading.Thread(target=drain, args=(sim.account, done, resets), daemon=True)
    chaos = Chaos(config, pg_url, rng)
    try:
        wait_for(lambda: holder_pid(pg_url) is not None, timeout=15)
        drainer.start()
        for _ in range(POINTS):
            time.sleep(rng.uniform(0.1, 0.6))
            chaos.blow()
        chaos.calm()
        wait_for(lambda: posts(sim) >= 2, timeout=30)  # a decision after the storm, too
        done.set()
        drainer.join()
        wait_for(lambda: holder_pid(pg_url) is not None, timeout=15)
        wait_for(lambda: pending(pg_url) == 0, timeout=30)
    finally:
        done.set()
        chaos.close()
    where = f"seed {seed} (FAILOVER_SEED={seed} repeats it; logs in {tmp_path}): {chaos.log}"
    posted = ledger_posted(pg_url)
    assert 2 <= posts(sim) <= posted, where  # every POST has its own ledger entry
    assert all(later - earlier <= 1 for earlier, later in pairwise([0, *resets])), where
    sent = delivered(pg_url)
    received = Counter((str(m["title"]), str(m["message"])) for m in receiver.messages)
    doubt = Counter(texts(pg_url, chaos.in_doubt)) + retried(pg_url)
    for text, count in received.items():
        assert count <= sent[text] + doubt[text], (where, text, count, sent[text])
    assert sum(sent.values()) <= sum(received.values()), where  # none lost


def pending(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM outbox_targets WHERE state = 'pending'").fetchone()
    assert row is not None
    return int(row[0])


def ledger_posted(url: str) -> int:
    """Ledger entries whose POST may have been sent (sending, unknown, succeeded, failed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM topups "
            "WHERE state IN ('sending', 'unknown', 'succeeded', 'failed')"
        ).fetchone()
    assert row is not None
    return int(row[0])


def delivered(url: str) -> Counter[tuple[str, str]]:
    """(title, body) of every target recorded as delivered."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT m.title, m.body FROM outbox_targets t "
            "JOIN outbox_messages m ON m.id = t.message_id WHERE t.state = 'delivered'"
        ).fetchall()
    return Counter((str(title), str(body)) for title, body in rows)


def retried(url: str) -> Counter[tuple[str, str]]:
    """(title, body) of delivered targets with a failed try before: a send that timed out
    (its daemon paused in the middle) may still have reached the URL, and is sent again
    (at least once, never lost)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT m.title, m.body, t.attempts FROM outbox_targets t "
            "JOIN outbox_messages m ON m.id = t.message_id "
            "WHERE t.state = 'delivered' AND t.attempts > 1"  # the delivery counts one
        ).fetchall()
    out: Counter[tuple[str, str]] = Counter()
    for title, body, tries in rows:
        out[(str(title), str(body))] += int(tries) - 1
    return out


def texts(url: str, targets: list[tuple[int, str]]) -> list[tuple[str, str]]:
    if not targets:
        return []
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT title, body FROM outbox_messages WHERE id = ANY(%s)",
            ([m for m, _ in targets],),
        ).fetchall()
    return [(str(title), str(body)) for title, body in rows]


def cli(config: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(config), *args],
        env=cli_env(WATCHER_ALLOW_FAST_POLL="1", WATCHER_STATE_URL=url, SECOND_KEY=SECOND_KEY),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_once_alone_takes_the_lease_for_its_cycle_and_hands_it_back(
    pair: tuple[Path, str], sim: SimServer
) -> None:
    config, url = pair
    sim.account.set_balance("20.00")
    done = cli(config, url, "once")
    assert done.returncode == 0, done.stderr
    assert posts(sim) == 1
    assert "top-ups skipped" not in done.stdout
    assert holder_pid(url) is None  # released at the end, not left to expire


def test_once_beside_a_leader_leaves_the_top_ups_to_it(
    pair: tuple[Path, str], sim: SimServer
) -> None:
    config, url = pair
    paused = cli(config, url, "topups", "pause", "--reason", "the leader must not pay here")
    assert paused.returncode == 0, paused.stderr  # (a paused kill switch: nobody pays)
    leader = Daemon(config, url)
    try:
        wait_for(lambda: holder_pid(url) == leader.pid)
        sim.account.set_balance("20.00")
        done = cli(config, url, "once")
        assert done.returncode == 0, done.stderr
        assert "top-ups skipped: another account-watcher owns the state" in done.stdout
        assert posts(sim) == 0
        assert holder_pid(url) == leader.pid  # its lease is not touched
    finally:
        leader.stop()
