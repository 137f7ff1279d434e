"""The state lock (`<state>.lock`, watcher/state/lock.py): only the process that holds it
reconciles `sending` top-ups and pays. `run` needs it; `once` without it runs with
top-ups off. Real processes against the loopback simulator; the lock is held by the
test process or by a real `run`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from conftest import REPO, Receiver, run_cli, wait_for
from topup_support import (
    PAID,
    TOPUP,
    UNKNOWN,
    ledger_states,
    posts,
    start,
    topup_caps,
    write_topup_config,
)

from watcher.providers.telnyx.sim import Fault, SimServer
from watcher.state.ledger import EntryState, Ledger, NewEntry
from watcher.state.lock import Lock, acquire, lock_path
from watcher.state.store import Store

SKIPPED = "top-ups skipped: another account-watcher owns the state"
CAPS = topup_caps(max_per_day="300.00")
POLL = "{interval: 60s, timeout: 30s}"


def held(state: Path) -> Lock:
    lock = acquire(state)
    assert lock is not None
    return lock


def test_the_lock_file_lives_beside_the_db_and_admits_one_holder(tmp_path: Path) -> None:
    state = tmp_path / "new-dir" / "state.db"
    assert lock_path(state) == tmp_path / "new-dir" / "state.db.lock"
    with held(state) as first:
        assert first.path == lock_path(state)
        assert first.path.read_text() == f"{os.getpid()}\n"
        assert acquire(state) is None  # flock: a second open file conflicts, same process too
        assert acquire(tmp_path / "other.db") is not None  # another state, another lock
    with held(state):  # released on close
        pass


def test_a_killed_holder_frees_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    code = (
        "import sys; from pathlib import Path; from watcher.state.lock import acquire; "
        f"lock = acquire(Path({str(state)!r})); print(lock is not None, flush=True); "
        "sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "True\n"
        assert acquire(state) is None
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        child.kill()
        child.communicate()
    with held(state):
        pass


def test_once_without_the_lock_leaves_sending_alone_and_never_posts(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_topup_config(tmp_path, CAPS, sim=sim, poll=POLL, notify_url=receiver.url)
    sim.account.set_balance("40.00")
    state = tmp_path / "state.db"
    with Store.open(state) as store:  # the owner's payment in flight (old: it caps nothing)
        new = NewEntry("main", Decimal("100.00"), "USD", "low-credit", "seed")
        Ledger(store).add(
            new, EntryState.SENDING, datetime.now(UTC) - timedelta(days=2), announce=False
        )

    with held(state):  # another account-watcher owns the state
        result = run_cli("--config", str(config), "once")
    assert result.returncode == 0, result.stderr
    assert SKIPPED in result.stdout.splitlines()
    assert (
        "  main: rule low-credit is critical; the top-up of 100.00 USD is left to the owner"
        in result.stdout.splitlines()
    )
    assert ledger_states(tmp_path) == [EntryState.SENDING]
    assert posts(sim) == 0
    assert not [t for t in receiver.titles if "top-up" in t]

    owner = run_cli("--config", str(config), "once")  # the lock is free now: it owns it
    assert owner.returncode == 0, owner.stderr
    assert SKIPPED not in owner.stdout
    assert ledger_states(tmp_path) == [EntryState.UNKNOWN, EntryState.SUCCEEDED]
    assert posts(sim) == 1
    assert UNKNOWN in receiver.titles
    assert PAID in receiver.titles


def test_run_refuses_to_start_while_the_lock_is_held(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_topup_config(
        tmp_path, CAPS, sim=sim, poll=POLL, notify_url=receiver.url, established=False
    )
    state = tmp_path / "state.db"
    with held(state):
        result = run_cli("--config", str(config), "run", timeout=30)
    assert result.returncode == 3
    assert result.stderr == (
        f"account-watcher: another account-watcher (run) is using {state}; stop it first\n"
    )
    assert not state.exists(), "a refused run opens nothing"
    assert sim.account.requests == []


def test_once_while_run_is_mid_post_keeps_the_payment_sending(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_topup_config(tmp_path, CAPS, sim=sim, poll=POLL, notify_url=receiver.url)
    sim.account.set_balance("40.00")
    release = threading.Event()
    sim.account.inject_fault(TOPUP, Fault.hold(release))
    daemon = start(config, "run")
    try:
        wait_for(lambda: posts(sim) == 1)  # `run` is mid-POST
        once = run_cli("--config", str(config), "once")
        during = ledger_states(tmp_path)
        second = run_cli("--config", str(config), "run", timeout=30)
        release.set()
        wait_for(lambda: PAID in receiver.titles)
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=20)
    finally:
        release.set()
        daemon.kill()
    assert once.returncode == 0, once.stderr
    assert SKIPPED in once.stdout
    assert during == [EntryState.SENDING], "once must not reconcile the owner's payment"
    assert second.returncode == 3
    assert "stop it first" in second.stderr
    assert daemon.returncode == 0, err
    assert posts(sim) == 1
    assert ledger_states(tmp_path) == [EntryState.SUCCEEDED]
    assert UNKNOWN not in receiver.titles
