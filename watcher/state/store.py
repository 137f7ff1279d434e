"""The daemon's durable state in one SQLite file.

Holds what must survive a restart: the first start, per-source cursors, audit ids
already seen, balance samples, failed webhook deliveries, alert states, source health
and the last cycle. One writer (the daemon); the CLI may read at the same time (WAL).

Storage conventions:
- datetimes are ISO 8601 UTC text with microseconds (`2026-11-02T10:00:00.000000+00:00`),
  so text order is time order; they come back as aware UTC datetimes. Naive datetimes
  are refused with `ValueError`.
- Decimals are TEXT (`str(Decimal)`), returned as the exact same Decimal.
- every sqlite3 error surfaces as `StoreError`, one sentence naming the file.

Transactions: `BEGIN IMMEDIATE` for the outermost `transaction()`; a write method
outside one is a transaction of its own, inside an open one it joins it (a method of
one statement as that statement, one of several as a SAVEPOINT, which makes it atomic
without a second BEGIN; see `Database.transaction`).

Layout: `Store` is this module's facade over one connection (watcher/state/db.py), with
the tables by concern — cursors.py (first start, cursors, audit ids), samples.py
(balance samples, webhook failures, retention), alerts.py (alert states, source health,
last cycle) — and the schema, migrations and file identity checks in migrations.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import structlog

from watcher.state.alerts import AlertTables, CycleInfo, SourceHealth
from watcher.state.cursors import CursorTables
from watcher.state.db import StateTarget, StoreError, describe_target, dt, ts
from watcher.state.migrations import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    check_header,
    check_integrity,
    identify,
    make_parent,
    migrate,
)
from watcher.state.samples import SampleTables

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "CycleInfo",
    "SourceHealth",
    "StateTarget",
    "Store",
    "StoreError",
    "describe_target",
    "dt",
    "open_readonly",
    "open_store",
    "state_exists",
    "ts",
]

log = structlog.get_logger(__name__)

BUSY_TIMEOUT_MS = 5000


class Store(CursorTables, SampleTables, AlertTables):
    """The SQLite state store. Create it with `Store.open(path)`; close it when done."""

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating if needed) the database at `path` and migrate it.

        In: the database file path; its parent directory is created with mode 0o700.
        Out: a ready store (WAL, synchronous=FULL, foreign keys on, schema current);
        `created` says whether this open made a new database (no file, an empty file, or
        an empty SQLite database), which is also recorded in `meta` (`created_new`).
        Raises: StoreError when the directory cannot be created or the file is not a
        usable account-watcher database (not SQLite, another application's, corrupt,
        unreadable, from a newer version). Nothing is written to such a file.
        """
        make_parent(path)
        check_header(path)
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise _unusable(path, exc) from exc
        store = cls(path, conn)
        try:
            store._prepare(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise _unusable(path, exc) from exc
        except StoreError as exc:
            conn.close()
            if isinstance(exc.__cause__, sqlite3.Error):
                raise _unusable(path, exc.__cause__) from exc.__cause__
            raise
        log.debug("store.opened", path=str(path), schema=SCHEMA_VERSION)
        return store

    def _prepare(self, conn: sqlite3.Connection, path: Path) -> None:
        """Identify, configure, check and migrate the freshly opened connection."""
        self.created = identify(conn, path)
        self._configure(conn)
        check_integrity(conn, path)
        with self.transaction():
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            migrate(
                self,
                version,
                lambda target: self._run(f"PRAGMA user_version = {int(target)}"),
                created=self.created,
            )
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"state database {self.path} is unusable: cannot switch it to WAL mode "
                f"(journal mode stays {mode})"
            )
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")


def state_exists(target: StateTarget) -> bool:
    """Whether there is a state to read (a command that only reads creates none): the
    SQLite file exists, or the PostgreSQL schema holds our tables. Raises StoreError."""
    if isinstance(target, Path):
        return target.exists()
    _need_psycopg()
    from watcher.state import pg

    return pg.schema_exists(target)


def open_store(target: StateTarget) -> Store:
    """Open (creating and migrating as needed) the state `target` names: a `Path` is a
    SQLite file (`Store.open`), a `str` a PostgreSQL URL (watcher/state/pg.py, which
    imports psycopg only then). Raises StoreError (one sentence, never the password).
    """
    if isinstance(target, Path):
        return Store.open(target)
    _need_psycopg()
    from watcher.state import pg

    return pg.open_postgresql(Store, target)


def open_readonly(target: StateTarget) -> Store:
    """A read-only connection to an existing state: nothing is created, migrated or
    written (the status page's own connection). Raises StoreError."""
    if isinstance(target, Path):
        return _sqlite_readonly(target)
    _need_psycopg()
    from watcher.state import pg

    return pg.open_postgresql(Store, target, readonly=True)


def _sqlite_readonly(path: Path) -> Store:
    try:
        conn = sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
        conn.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        raise _unusable(path, exc) from exc
    return Store(path, conn)


def _need_psycopg() -> None:
    """psycopg is imported only for a PostgreSQL state; without it, one sentence."""
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError as exc:
        if not (exc.name or "psycopg").startswith("psycopg"):
            raise
        raise StoreError(
            "state.url names a PostgreSQL database but psycopg is not installed; install "
            "it with pip install 'account-watcher[postgresql]'"
        ) from None


def _unusable(path: Path, exc: sqlite3.Error) -> StoreError:
    return StoreError(f"state database {path} is unusable: {exc}")
