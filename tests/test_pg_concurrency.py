"""Several processes on one PostgreSQL state: the writers take turns (the advisory
transaction lock every outermost transaction takes), so the ledger's caps hold across
processes and an outbox target is claimed by exactly one of them.

Each worker (tests/pg_worker.py) is a real process; they start writing together: the
test holds a gate lock until every one of them waits on it (seen in `pg_locks`).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import psycopg
from conftest import REPO, wait_for
from pg_worker import CAP, GATE

from watcher.core.lifecycle import Reason
from watcher.core.model import Severity
from watcher.core.render import Message
from watcher.notify.delivery import Target
from watcher.notify.outbox import Outbox
from watcher.state.ledger import Ledger
from watcher.state.store import open_store

WORKERS = 3


def race(url: str, kind: str) -> list[int]:
    """Run WORKERS workers of `kind` released at once; out: what each printed."""
    with psycopg.connect(url, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(%s)", (GATE,))
        workers = [_start(kind, url, f"w{i}") for i in range(WORKERS)]
        try:
            wait_for(lambda: _waiting(gate) == WORKERS, timeout=60)
        finally:
            gate.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
        outs = [w.communicate(timeout=60) for w in workers]
    for worker, (_, err) in zip(workers, outs, strict=True):
        assert worker.returncode == 0, err
    return [int(out.strip()) for out, _ in outs]


def _start(kind: str, url: str, name: str) -> subprocess.Popen[str]:
    script = str(REPO / "tests" / "pg_worker.py")
    return subprocess.Popen(
        [sys.executable, script, kind, url, name],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _waiting(conn: Any) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted",
        (GATE,),
    ).fetchone()
    return int(row[0])


def test_concurrent_top_ups_never_exceed_the_cap(pg_url: str) -> None:
    open_store(pg_url).close()  # migrated once, before the race
    wrote = race(pg_url, "ledger")
    assert sum(wrote) == CAP, wrote
    with open_store(pg_url) as store:
        assert len(Ledger(store).entries()) == CAP


def test_an_outbox_target_is_claimed_by_exactly_one_process(pg_url: str) -> None:
    message = Message("[CRITICAL] x", "body", Severity.CRITICAL, "x", "main", Reason.FIRING)
    with open_store(pg_url) as store:
        Outbox(store).enqueue(message, [Target("ops", "u1", "json://…")], datetime.now(UTC))
    assert sorted(race(pg_url, "claim")) == [0] * (WORKERS - 1) + [1]
    with open_store(pg_url) as store:
        claimed = store.query("SELECT claimed_by FROM outbox_targets")
    assert len(claimed) == 1 and str(claimed[0][0]).startswith("w")
