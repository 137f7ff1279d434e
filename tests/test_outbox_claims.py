"""Outbox claims and per-URL results: a URL that accepted a message never gets it again.

End to end with real processes of the CLI and local HTTP receivers, one of which holds
its answer (the message has arrived, no reply yet): SIGKILL during the hold, and `once`
started while `run` is sending. Then the claim rules, table-driven, with time as a
parameter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Receiver, cli_env, run_cli, wait_for, write_config
from pydantic import SecretStr

from watcher.core.lifecycle import Reason
from watcher.core.model import Severity
from watcher.core.render import Message
from watcher.notify.delivery import Notifier, Route, Target, url_id
from watcher.notify.flush import Policy, flush
from watcher.notify.outbox import Item, Outbox, claim_ttl
from watcher.state.store import StateTarget, Store, open_store

LOW = "rules:\n  - {name: low-credit, kind: balance, below: 50, severity: critical}\n"
FIRING = "[CRITICAL] low-credit firing — main"


@dataclass
class SlowReceiver:
    """A `json://` endpoint that takes each message at once but holds the answer to the
    first `hold` requests until `release` is set (then answers 200)."""

    port: int = 0
    hold: int = 1
    release: threading.Event = field(default_factory=threading.Event)
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """`rto=60`: apprise's read timeout (4 s by default) never ends the hold early,
        only the send timeout (`poll.timeout`) does."""
        return f"json://127.0.0.1:{self.port}/hook?rto=60"

    @property
    def titles(self) -> list[str]:
        return [str(m.get("title", "")) for m in self.messages]


@pytest.fixture
def slow() -> Iterator[SlowReceiver]:
    state = SlowReceiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                state.messages.append(json.loads(body))
                held = len(state.messages) <= state.hold
            if held:
                state.release.wait(timeout=60)
            with contextlib.suppress(OSError):  # the sender may be dead by now
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


def start(config: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), *args],
        env=cli_env(**env),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, wait, and the process's stderr; fails unless it exited 0."""
    try:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    return err


def target_state(tmp_path: Path, url: str) -> str | None:
    """The outbox state of the (only) message's target for `url`, read as SQLite sees it."""
    conn = sqlite3.connect(f"file:{tmp_path / 'state.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT state FROM outbox_targets WHERE url_id = ?", (url_id(SecretStr(url)),)
        ).fetchall()
    except sqlite3.Error:
        return None  # not created yet
    finally:
        conn.close()
    return str(rows[0][0]) if rows else None


def settle_for(predicate: Any, seconds: float) -> None:
    """Wait until `predicate()` holds or `seconds` passed, whichever is first."""
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


# ----------------------------------------------------------------- real processes


def test_sigkill_while_one_url_hangs_never_resends_to_the_url_that_accepted(
    tmp_path: Path, sim: Any, receiver: Receiver, slow: SlowReceiver
) -> None:
    config = write_config(
        tmp_path, sim.base_url, [receiver.url, slow.url], LOW, interval="5s", timeout="5s"
    )
    sim.account.set_balance("10.00")
    daemon = start(config, "run", WATCHER_ALLOW_FAST_POLL="1")
    try:
        wait_for(lambda: receiver.titles == [FIRING] and len(slow.messages) == 1)
        # The fast URL's result is written as soon as it is known (at most 3 s of the
        # slow URL's 5 s send timeout are waited for here; then the kill happens anyway).
        settle_for(lambda: target_state(tmp_path, receiver.url) == "delivered", 3.0)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
    finally:
        daemon.kill()
    assert daemon.returncode == -signal.SIGKILL
    slow.release.set()  # from now on the slow URL answers at once
    before_restart = len(slow.messages)

    again = start(config, "run", WATCHER_ALLOW_FAST_POLL="1")
    try:
        # the dead process's claim on the slow URL expires, then the message goes out
        wait_for(lambda: len(slow.messages) > before_restart, timeout=claim_ttl(5).seconds + 25)
    finally:
        stop(again)
    assert receiver.titles == [FIRING]  # exactly once: not again after the restart
    assert slow.titles[before_restart:] == [FIRING]
    assert target_state(tmp_path, slow.url) == "delivered"


def test_once_while_run_is_sending_does_not_send_the_same_target(
    tmp_path: Path, sim: Any, slow: SlowReceiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [slow.url], LOW, interval="60s", timeout="30s")
    sim.account.set_balance("10.00")
    daemon = start(config, "run")
    try:
        wait_for(lambda: len(slow.messages) == 1)  # run is sending; no answer yet
        result = run_cli("--config", str(config), "once")
        assert result.returncode == 0, result.stderr
        slow.release.set()
        wait_for(lambda: target_state(tmp_path, slow.url) == "delivered")
    finally:
        stop(daemon)
    assert slow.titles == [FIRING]  # exactly once


# ------------------------------------------------------------- the claim rules

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=13)
MESSAGE = Message(
    "[CRITICAL] x firing — main", "body", Severity.CRITICAL, "x", "main", Reason.FIRING
)
TARGET = Target("ops", "u1", "json://127.0.0.1/…")


@pytest.fixture
def store(state_target: StateTarget) -> Iterator[Store]:
    with open_store(state_target) as opened:
        yield opened


def only(outbox: Outbox) -> Item:
    (item,) = outbox.pending()
    return item


@pytest.mark.parametrize(
    ("case", "second_owner", "after", "taken"),
    [
        ("the owner itself again", "a", timedelta(seconds=1), True),
        ("someone else right away", "b", timedelta(0), False),
        ("someone else just before expiry", "b", TTL - timedelta(microseconds=1), False),
        ("someone else at expiry (the owner died)", "b", TTL, True),
        ("someone else long after", "b", timedelta(hours=1), True),
    ],
)
def test_a_claim_is_skipped_by_others_until_it_expires(
    store: Store, case: str, second_owner: str, after: timedelta, taken: bool
) -> None:
    first = Outbox(store, owner="a")
    first.enqueue(MESSAGE, [TARGET], T0)
    assert first.claim(only(first), T0, TTL)
    second = Outbox(store, owner=second_owner)
    assert second.claim(only(second), T0 + after, TTL) is taken, case


def test_a_claim_taken_over_after_expiry_is_lost_to_the_first_owner(store: Store) -> None:
    first, second = Outbox(store, owner="a"), Outbox(store, owner="b")
    first.enqueue(MESSAGE, [TARGET], T0)
    item = only(first)
    assert first.claim(item, T0, TTL)
    assert second.claim(item, T0 + TTL, TTL)
    assert not first.claim(item, T0 + TTL + timedelta(seconds=1), TTL)
    # the late first owner's failure neither releases nor changes the new owner's claim
    first.mark_failed(item, T0 + TTL + timedelta(seconds=2), "timeout")
    assert only(second).attempts == 0
    assert not Outbox(store, owner="c").claim(item, T0 + TTL + timedelta(seconds=3), TTL)


@pytest.mark.parametrize(
    ("case", "record", "other_may_claim"),
    [
        ("delivered: never again", "delivered", False),
        ("failed: released, due again", "failed", True),
    ],
)
def test_a_recorded_result_ends_the_claim(
    store: Store, case: str, record: str, other_may_claim: bool
) -> None:
    owner = Outbox(store, owner="a")
    owner.enqueue(MESSAGE, [TARGET], T0)
    item = only(owner)
    assert owner.claim(item, T0, TTL)
    if record == "delivered":
        owner.mark_delivered(item, T0 + timedelta(seconds=1))
    else:
        owner.mark_failed(item, T0 + timedelta(seconds=1), "HTTP 500")
    later = owner.pending()
    other = Outbox(store, owner="b")
    claimed = bool(later) and other.claim(later[0], T0 + timedelta(seconds=2), TTL)
    assert claimed is other_may_claim, case


def test_a_target_tried_by_someone_else_since_it_was_read_is_not_claimed(store: Store) -> None:
    first, second = Outbox(store, owner="a"), Outbox(store, owner="b")
    first.enqueue(MESSAGE, [TARGET], T0)
    stale = only(second)  # read by b ...
    assert first.claim(only(first), T0, TTL)  # ... then a sends it and it fails
    first.mark_failed(only(first), T0 + timedelta(seconds=1), "HTTP 500")
    assert not second.claim(stale, T0 + timedelta(seconds=2), TTL)


@pytest.mark.parametrize(("timeout", "ttl"), [(3.0, 3 + 10), (10.0, 20), (0.5, 10.5)])
def test_claim_ttl_is_the_send_timeout_plus_a_margin(timeout: float, ttl: float) -> None:
    assert claim_ttl(timeout) == timedelta(seconds=ttl)


async def test_flush_skips_a_url_whose_oldest_message_is_claimed_elsewhere(
    store: Store, receiver: Receiver
) -> None:
    notifier = Notifier({"ops": Route((SecretStr(receiver.url),))}, default_route="ops")
    policy = Policy(give_up_after=timedelta(hours=24), failures_before_fallback=3, fallbacks={})
    ours, theirs = Outbox(store, owner="a"), Outbox(store, owner="b")
    ours.enqueue(MESSAGE, notifier.targets("ops"), T0)
    resolved = Message("[RESOLVED] x — main", "b", Severity.CRITICAL, "x", "main", Reason.RESOLVED)
    ours.enqueue(resolved, notifier.targets("ops"), T0)
    assert theirs.claim(ours.pending()[0], T0, claim_ttl(notifier.timeout))

    result = await flush(ours, notifier, T0 + timedelta(seconds=1), policy, everything=True)
    assert result.delivered == [] and result.failed == []
    assert receiver.hits == 0  # neither the claimed one nor the one after it (order kept)

    late = T0 + claim_ttl(notifier.timeout)  # the other owner died: its claim expired
    result = await flush(ours, notifier, late, policy, everything=True)
    assert receiver.titles == [MESSAGE.title, resolved.title]
    assert ours.backlog() == 0


async def test_a_claim_is_taken_at_the_clock_not_at_the_cycle_start(
    store: Store, slow: SlowReceiver
) -> None:
    """A cycle's `now` is taken before collecting, maybe long before the send: a claim
    made at that time would already look expired to others."""
    notifier = Notifier({"ops": Route((SecretStr(slow.url),))}, default_route="ops", timeout=5)
    policy = Policy(give_up_after=timedelta(hours=24), failures_before_fallback=3, fallbacks={})
    ours = Outbox(store, owner="a")
    ours.enqueue(MESSAGE, notifier.targets("ops"), T0)
    sent_at = T0 + timedelta(hours=1)  # the collect phase took an hour
    sending = asyncio.create_task(flush(ours, notifier, T0, policy, clock=lambda: sent_at))
    while not slow.messages:  # the send is held by the receiver
        await asyncio.sleep(0.01)
    other = Outbox(store, owner="b")
    assert not other.claim(only(other), sent_at + timedelta(seconds=1), claim_ttl(5))
    slow.release.set()
    result = await sending
    assert [i.message.title for i in result.delivered] == [MESSAGE.title]


HOST = socket.gethostname()


@pytest.mark.parametrize(
    ("case", "owner", "freed"),
    [
        ("a dead process of this host", f"{HOST}:4242:ab12", True),
        ("a live process of this host", f"{HOST}:4243:ab12", False),
        ("this very process", f"{HOST}:{{pid}}:ab12", False),
        ("a process of another host", "elsewhere:4242:ab12", False),
        ("a name in no known form", "a", False),
    ],
    ids=["dead here", "alive here", "this process", "other host", "unknown form"],
)
def test_the_claims_of_a_dead_owner_are_freed_at_once(
    store: Store, case: str, owner: str, freed: bool
) -> None:
    first = Outbox(store, owner=owner.format(pid=os.getpid()))
    first.enqueue(MESSAGE, [TARGET], T0)
    assert first.claim(only(first), T0, TTL)
    survivor = Outbox(store, owner="b")
    assert survivor.release_dead_claims(alive=lambda pid: pid != 4242) == int(freed), case
    assert survivor.claim(only(survivor), T0 + timedelta(seconds=1), TTL) is freed, case
