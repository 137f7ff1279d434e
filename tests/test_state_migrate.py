"""`account-watcher state migrate --to URL`: a SQLite state copied into PostgreSQL,
through the real CLI, against a real PostgreSQL server (watcher/cli/statecmd.py)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import Receiver, cli_env, run_cli, write_config

from watcher.core.ledger_types import EntryState, NewEntry
from watcher.providers.telnyx.sim import SimServer
from watcher.state import lock as statelock
from watcher.state.ledger import Ledger
from watcher.state.store import open_store

RULES = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100, critical: 50}
"""
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ENTRY = NewEntry("main", Decimal("100.00"), "USD", "low-credit", "critical")


@pytest.fixture
def sqlite_state(tmp_path: Path, sim: SimServer, receiver: Receiver) -> Path:
    """A SQLite state with a firing alert, samples, a delivered message and two ledger
    entries: the config's path."""
    config = write_config(tmp_path, sim.base_url, [receiver.url], RULES)
    sim.account.set_balance("30.00")
    done = run_cli("--config", str(config), "once")
    assert done.returncode == 0, done.stderr
    with open_store(tmp_path / "state.db") as store:
        ledger = Ledger(store)
        ledger.add(ENTRY, EntryState.DRY_RUN, NOW)
        ledger.add(ENTRY, EntryState.REFUSED, NOW)
    return config


def counts_sqlite(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: conn.execute(f"SELECT count(*) FROM {n}").fetchone()[0] for n in names}  # noqa: S608


def counts_pg(url: str, tables: list[str]) -> dict[str, int]:
    with open_store(url) as store:
        return {t: int(store.query(f"SELECT count(*) FROM {t}")[0][0]) for t in tables}  # noqa: S608


def migrate(config: Path, to: str, **env: str) -> tuple[int, str, str]:
    done = run_cli("--config", str(config), "state", "migrate", "--to", to, env=cli_env(**env))
    return done.returncode, done.stdout, done.stderr


def test_every_row_is_copied_and_the_daemon_goes_on_from_it(
    tmp_path: Path, sqlite_state: Path, pg_url: str
) -> None:
    before = counts_sqlite(tmp_path / "state.db")
    with open_store(tmp_path / "state.db") as source:
        first_start = source.meta("first_start")
    assert first_start is not None
    code, out, err = migrate(sqlite_state, "env:TARGET", TARGET=pg_url)
    assert code == 0, err
    rows = sum(before.values())
    assert out.startswith(f"copied {rows} row(s) of {len(before)} table(s) from ")
    assert counts_pg(pg_url, list(before)) == before
    assert before["alerts"] >= 1 and before["outbox_targets"] >= 1 and before["topups"] == 2
    with open_store(pg_url) as store:
        ledger = Ledger(store)
        assert [e.state for e in ledger.entries()] == [EntryState.DRY_RUN, EntryState.REFUSED]
        later = ledger.add(ENTRY, EntryState.DRY_RUN, NOW)  # ids go on after the copied ones
        assert later.id == 3
        assert store.meta("first_start") == first_start  # came along: not a fresh state
        assert store.meta("created_new") is None
    pg_config = tmp_path / "pg.yaml"
    text = sqlite_state.read_text().replace(
        f"state:\n  path: {tmp_path / 'state.db'}", 'state:\n  url: "env:TARGET"'
    )
    pg_config.write_text(text)
    status = run_cli("--config", str(pg_config), "status", env=cli_env(TARGET=pg_url))
    assert status.returncode == 0, status.stderr
    assert "low-credit" in status.stdout


def test_a_state_in_use_by_a_daemon_is_not_copied(
    tmp_path: Path, sqlite_state: Path, pg_url: str
) -> None:
    held = statelock.acquire(tmp_path / "state.db")  # as `run` holds it
    assert held is not None
    with held:
        code, out, err = migrate(sqlite_state, "env:TARGET", TARGET=pg_url)
    assert code == 3
    assert "a daemon (run) is using" in err and "stop it first" in err
    assert out == ""
    assert counts_pg(pg_url, ["alerts", "topups"]) == {"alerts": 0, "topups": 0}


def test_a_target_that_holds_a_state_is_left_alone(sqlite_state: Path, pg_url: str) -> None:
    assert migrate(sqlite_state, "env:TARGET", TARGET=pg_url)[0] == 0
    code, _, err = migrate(sqlite_state, "env:TARGET", TARGET=pg_url)
    assert code == 3
    assert "already holds a state" in err
    assert counts_pg(pg_url, ["topups"]) == {"topups": 2}  # not doubled


def test_the_password_is_never_printed(sqlite_state: Path, pg_url: str) -> None:
    with_password = pg_url.replace("watcher@", "watcher:hunter2secret@")  # trust: accepted
    code, out, err = migrate(sqlite_state, with_password)
    assert code == 0, err
    assert "hunter2secret" not in out + err
    assert "postgresql://watcher@127.0.0.1:" in out


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("mysql://x@127.0.0.1/db", "--to must be a postgresql:// URL"),
        ("env:UNSET_TARGET_URL", "UNSET_TARGET_URL"),
    ],
)
def test_a_target_that_is_not_postgresql_is_a_usage_error(
    sqlite_state: Path, to: str, message: str
) -> None:
    code, _, err = migrate(sqlite_state, to)
    assert code == 2
    assert message in err
