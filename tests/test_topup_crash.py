"""Crash tests with real processes: the daemon dies at each step of the top-up protocol,
is started again, and never pays twice; an outcome it could not record is `unknown` and
alerted (through real apprise into the `receiver`).

The kill points: SIGKILL while the simulator holds the POST open (the request arrived,
no answer yet), and the test-only `WATCHER_TEST_CRASH_AT` hook (`os._exit` exactly at a
step: before the ledger write, after it, after the response, after the outcome write).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from conftest import API_KEY, Receiver, cli_env, run_cli, wait_for
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
from watcher.service.topup import CRASH_ENV, CRASH_EXIT
from watcher.state.ledger import EntryState

CAPS = topup_caps(max_per_day="100.00")
POLL = "{interval: 10s, timeout: 5s}"


def test_sigkill_while_the_post_is_in_flight_never_pays_twice(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_topup_config(tmp_path, CAPS, sim=sim, poll=POLL, notify_url=receiver.url)
    sim.account.set_balance("40.00")
    release = threading.Event()
    sim.account.inject_fault(TOPUP, Fault.hold(release))
    daemon = start(config, "run")
    try:
        wait_for(lambda: posts(sim) == 1)  # the POST arrived; no answer yet
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
    finally:
        daemon.kill()
        release.set()  # the server goes on and charges the card, as a real one may
    assert daemon.returncode == -signal.SIGKILL
    wait_for(lambda: sim.account.topups != [])
    assert ledger_states(tmp_path) == [EntryState.SENDING]

    again = start(config, "run")
    try:
        wait_for(lambda: UNKNOWN in receiver.titles)
        again.send_signal(signal.SIGTERM)
        _, err = again.communicate(timeout=20)
    finally:
        again.kill()
    assert again.returncode == 0, err
    assert posts(sim) == 1, "no second POST after the restart"
    assert ledger_states(tmp_path) == [EntryState.UNKNOWN]
    assert API_KEY not in err
    body = str(receiver.messages[receiver.titles.index(UNKNOWN)]["message"])
    assert "account-watcher topups settle 1 --as succeeded|failed" in body


@pytest.mark.parametrize(
    ("point", "posts_after_crash", "state_after_crash", "final_state", "title"),
    [
        pytest.param("before_ledger_write", 0, [], EntryState.SUCCEEDED, PAID, id="before-write"),
        pytest.param(
            "after_ledger_write",
            0,
            [EntryState.SENDING],
            EntryState.UNKNOWN,
            UNKNOWN,
            id="after-write",
        ),
        pytest.param(
            "after_response",
            1,
            [EntryState.SENDING],
            EntryState.UNKNOWN,
            UNKNOWN,
            id="after-response",
        ),
        pytest.param(
            "after_outcome_write",
            1,
            [EntryState.SUCCEEDED],
            EntryState.SUCCEEDED,
            PAID,
            id="after-outcome",
        ),
    ],
)
def test_crash_at_each_step_then_restart(
    tmp_path: Path,
    sim: SimServer,
    receiver: Receiver,
    point: str,
    posts_after_crash: int,
    state_after_crash: list[EntryState],
    final_state: EntryState,
    title: str,
) -> None:
    config = write_topup_config(tmp_path, CAPS, sim=sim, poll=POLL, notify_url=receiver.url)
    sim.account.set_balance("40.00")
    crashed = run_cli("--config", str(config), "once", env=cli_env(**{CRASH_ENV: point}))
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    assert posts(sim) == posts_after_crash
    assert ledger_states(tmp_path) == state_after_crash
    assert receiver.messages == []  # it died before notifying

    sim.account.set_balance("40.00")  # whatever was paid is spent: still critical
    restarted = run_cli("--config", str(config), "once")
    assert restarted.returncode == 0, restarted.stderr
    # an `unknown` entry is never retried: it counts toward the cap and the interval
    assert posts(sim) == (1 if point == "before_ledger_write" else posts_after_crash)
    assert ledger_states(tmp_path)[0] is final_state
    assert title in receiver.titles
