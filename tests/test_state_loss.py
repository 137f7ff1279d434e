"""A lost, emptied or replaced state never leads to a second charge (issue: hardening).

Each test makes an in-doubt top-up with a real daemon process (SIGKILL while the
simulator holds the POST open, so the card may have been charged), leaves the balance
low, damages the state the way an operator or a disk might, and runs `once` again: the
simulator must see no second POST. The ledger journal beside the state (`state.db.ledger`)
and the checkpoint after each ledger write are what make that hold.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import threading
from pathlib import Path

import pytest
from conftest import Receiver, cli_env, run_cli, wait_for
from topup_support import ledger_states, posts, start, topup_caps, write_topup_config

from watcher.providers.telnyx.sim import Fault, SimServer
from watcher.service.topup import CRASH_ENV, CRASH_EXIT
from watcher.state.journal import journal_path
from watcher.state.ledger import EntryState, Ledger
from watcher.state.store import Store

CAPS = topup_caps(max_per_day="300.00")  # 100.00 at most once an hour
POLL = "{interval: 10s, timeout: 5s}"
LOST = "[CRITICAL] state lost: top-ups refused"
FRESH = "[WARNING] state created fresh at "
TOPUP = "/payment/stored_payment_transactions"


def in_doubt(tmp_path: Path, sim: SimServer, receiver: Receiver, state: Path) -> Path:
    """A config whose state holds one `sending` entry whose POST reached the simulator
    (the daemon was SIGKILLed before the answer); the balance stays low. Out: config."""
    config = write_topup_config(
        tmp_path, CAPS, sim=sim, poll=POLL, notify_url=receiver.url, state=state
    )
    sim.account.set_balance("40.00")
    release = threading.Event()
    sim.account.inject_fault(TOPUP, Fault.hold(release))
    daemon = start(config, "run")
    try:
        wait_for(lambda: posts(sim) == 1)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
    finally:
        daemon.kill()
        release.set()  # the server goes on and charges the card, as a real one may
    wait_for(lambda: sim.account.topups != [])
    sim.account.clear_faults()
    sim.account.set_balance("40.00")  # whatever was paid is spent: still critical
    return config


def remove(state: Path, *names: str) -> None:
    """Delete these files beside `state` (those that exist)."""
    for name in names:
        state.with_name(name).unlink(missing_ok=True)


def once(config: Path) -> tuple[int, str, str]:
    result = run_cli("--config", str(config), "once")
    return result.returncode, result.stdout, result.stderr


def test_a_copy_of_the_main_file_alone_holds_the_sending_entry(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    state = tmp_path / "state.db"
    config = write_topup_config(tmp_path, CAPS, sim=sim, poll=POLL, notify_url=receiver.url)
    sim.account.set_balance("40.00")
    crashed = run_cli(
        "--config", str(config), "once", env=cli_env(**{CRASH_ENV: "after_ledger_write"})
    )  # exits right after the `sending` commit, before the POST
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    copy = tmp_path / "copy" / "state.db"
    copy.parent.mkdir()
    shutil.copyfile(state, copy)  # the main file only: no -wal, no -shm
    with Store.open(copy) as store:
        assert [e.state for e in Ledger(store).entries()] == [EntryState.SENDING]


@pytest.mark.parametrize("damage", ["delete", "garble"])
def test_a_lost_or_damaged_wal_after_sigkill_does_not_pay_again(
    tmp_path: Path, sim: SimServer, receiver: Receiver, damage: str
) -> None:
    state = tmp_path / "state.db"
    config = in_doubt(tmp_path, sim, receiver, state)
    wal = state.with_name("state.db-wal")
    if damage == "delete":
        remove(state, "state.db-wal", "state.db-shm")
    elif wal.exists():
        wal.write_bytes(b"\xff" * wal.stat().st_size)
    code, _, err = once(config)
    assert code == 0, err
    assert posts(sim) == 1, "no second POST"
    assert ledger_states(tmp_path) == [EntryState.UNKNOWN, EntryState.REFUSED]  # min_interval


def test_an_emptied_database_refuses_top_ups_as_state_lost(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    state = tmp_path / "state.db"
    config = in_doubt(tmp_path, sim, receiver, state)
    remove(state, "state.db-wal", "state.db-shm")
    state.write_bytes(b"")  # truncate -s 0
    code, _, err = once(config)
    assert code == 0, err
    assert posts(sim) == 1, "no second POST"
    assert LOST in receiver.titles
    body = str(receiver.messages[receiver.titles.index(LOST)]["message"])
    assert "1 top-up(s) in the ledger journal" in body and "topups resume" in body
    assert "[CRITICAL] low-credit firing — main" in receiver.titles, "alerts keep working"
    assert ledger_states(tmp_path) == [EntryState.UNKNOWN, EntryState.REFUSED]


def test_an_emptied_database_with_its_stale_wal_does_not_pay_again(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    state = tmp_path / "state.db"
    config = in_doubt(tmp_path, sim, receiver, state)
    state.write_bytes(b"")  # truncate -s 0, the -wal and -shm of the killed process stay
    code, _, err = once(config)
    assert code == 0, err
    assert posts(sim) == 1, "no second POST"
    assert LOST in receiver.titles  # the checkpoint left no frames to bring the entry back


def test_an_unrelated_sqlite_file_in_its_place_is_an_error(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    state = tmp_path / "state.db"
    config = in_doubt(tmp_path, sim, receiver, state)
    remove(state, "state.db", "state.db-wal", "state.db-shm")
    with sqlite3.connect(state) as other:
        other.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    before = state.read_bytes()
    code, _, err = once(config)
    assert code == 3
    assert err == (
        f"account-watcher: state database {state} is unusable: it is not an account-watcher "
        "state database (application id 0x0, 1 tables); move it away or point state.path at "
        "another file\n"
    )
    assert state.read_bytes() == before, "never migrated over"
    assert posts(sim) == 1


def test_a_removed_state_directory_starts_fresh_and_waits(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    state = tmp_path / "state" / "state.db"
    config = in_doubt(tmp_path, sim, receiver, state)
    shutil.rmtree(state.parent)  # rm -r of the state directory, journal included
    code, _, err = once(config)
    assert code == 0, err
    assert posts(sim) == 1, "no second POST"
    fresh = [t for t in receiver.titles if t.startswith(FRESH)]
    assert fresh == [f"{FRESH}{state}"]
    body = str(receiver.messages[receiver.titles.index(fresh[0])]["message"])
    assert "check the provider for top-ups of the last 24 h" in body
    assert err.count("state.created_fresh") == 1
    code, _, err = once(config)
    assert posts(sim) == 1
    assert [t for t in receiver.titles if t.startswith(FRESH)] == fresh, "said once"


def test_a_deleted_database_is_restored_from_the_journal_and_settled_from_it(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    state = tmp_path / "state.db"
    config = in_doubt(tmp_path, sim, receiver, state)
    remove(state, "state.db", "state.db-wal", "state.db-shm")
    assert journal_path(state).exists()
    listed = run_cli("--config", str(config), "topups")
    assert listed.returncode == 0, listed.stderr
    assert "#1 " in listed.stdout and "unknown" in listed.stdout
    assert "REFUSED (state-lost)" in listed.stdout
    code, _, err = once(config)
    assert code == 0, err
    assert posts(sim) == 1, "no second POST"
    assert LOST in receiver.titles
    settled = run_cli(
        "--config", str(config), "topups", "settle", "1", "--as", "failed", "--reason", "portal"
    )
    assert settled.returncode == 0, settled.stderr
    assert run_cli("--config", str(config), "once").returncode == 0
    assert posts(sim) == 1, "still refused until a human resumes"
    resumed = run_cli("--config", str(config), "topups", "resume")
    assert resumed.returncode == 0 and "top-ups resumed" in resumed.stdout
    assert "REFUSED (state-lost)" not in run_cli("--config", str(config), "topups").stdout
    assert run_cli("--config", str(config), "once").returncode == 0
    assert posts(sim) == 1, "the restored POST still holds min_interval"
