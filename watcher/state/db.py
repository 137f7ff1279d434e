"""The state database's connection: transactions, the extension seam and timestamps.

`Database` is what every table module of `watcher/state/` builds on: one connection in
autocommit mode — a sqlite3 one, or a PostgreSQL one (watcher/state/pg.py) that takes
the same SQL — `transaction()` (outermost: `BEGIN IMMEDIATE` on SQLite, `BEGIN` plus a
transaction-level advisory lock on PostgreSQL, so writers are serialised on both;
`transaction()` blocks nested inside it are SAVEPOINTs, a single write inside it is just
that statement), every driver error turned into `StoreError`, and the public seam
(`query`, `execute`, `executemany`, `insert`) the table and feature modules use.
The SQL is written once, in the dialect both engines accept (SQLite 3.35+ and
PostgreSQL 15): `?` placeholders, `ON CONFLICT … DO …`, `RETURNING id`, no SQLite-only
functions. Opening and migrating is `open_store` (watcher/state/store.py).
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import unquote, urlsplit

import structlog

log = structlog.get_logger("watcher.state.store")

_PRAGMA_NAME = re.compile(r"[a-z_]+")


class StoreError(Exception):
    """The state database cannot be opened or used; the message is one sentence."""


class FencedOut(StoreError):
    """A write with side effects was refused: this process no longer holds the state."""


class Connection(Protocol):
    """What `Database` needs of its connection: sqlite3's, or watcher/state/pg.py's."""

    @property
    def in_transaction(self) -> bool: ...
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, parameters: Any, /) -> Any: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the engines beyond the SQL (which is the same on both)."""

    name: str  # "sqlite" or "postgresql"
    errors: tuple[type[Exception], ...]  # the driver's errors, turned into StoreError
    begin: tuple[str, ...]  # what opens the outermost transaction
    epoch: str
    """An integer expression: the whole seconds since 1970 of the timestamp text `{}`
    (integers, so that both engines cut a time series at the very same instants)."""


SQLITE = Dialect(
    "sqlite",
    (sqlite3.Error,),
    ("BEGIN IMMEDIATE",),
    "CAST(strftime('%s', {}) AS INTEGER)",
)


StateTarget = Path | str
"""Where the state is: a SQLite file, or a resolved `postgresql://` URL (a secret)."""


def describe_target(target: StateTarget) -> str:
    """The state as messages name it: the file, or `postgresql://user@host:port/db`
    (never the password nor the URL's other parts)."""
    if isinstance(target, Path):
        return str(target)
    try:
        parts = urlsplit(target)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "postgresql://(unreadable URL)"
    user = f"{unquote(parts.username)}@" if parts.username else ""
    database = unquote(parts.path.strip("/"))
    return f"postgresql://{user}{parts.hostname or ''}{port}/{database}"


def ts(value: datetime) -> str:
    """A UTC datetime as stored: ISO 8601 text with microseconds (sorts as time)."""
    if value.tzinfo is UTC:  # every time the daemon has; the same few on many rows
        return _utc_text(value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to the store; use UTC")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


@functools.lru_cache(maxsize=1024)
def _utc_text(value: datetime) -> str:
    """`isoformat` costs ~1.8 us; a cycle's commit formats its `now` on many rows.
    Only UTC datetimes are remembered: they compare equal exactly when their text is
    (zoned ones in a repeated hour compare equal across `fold`, which the text is not)."""
    return value.isoformat(timespec="microseconds")


def dt(text: str) -> datetime:
    """A stored timestamp back to an aware UTC datetime."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def ts_or_none(value: datetime | None) -> str | None:
    """`ts(value)`, or None for None."""
    return None if value is None else ts(value)


def dt_or_none(text: str | None) -> datetime | None:
    """`dt(text)`, or None for None."""
    return None if text is None else dt(text)


class Database:
    """One open state database connection; `Store` adds the tables and `open`."""

    def __init__(
        self,
        path: Path | None,
        conn: Connection,
        *,
        where: str | None = None,
        dialect: Dialect = SQLITE,
    ) -> None:
        self.path = path  # the SQLite file; None on PostgreSQL
        self.where = where if where is not None else str(path)  # for messages: no secret
        self.dialect = dialect
        self._conn = conn
        self._depth = 0
        self.created = False  # this open created the schema in an empty database
        # Per account, the audit ids of its last read that the state holds as seen
        # (watcher/state/cursors.py: a seen id stays seen, so it is not asked again).
        self._seen_ids: dict[str, set[str]] = {}
        # Set by a leader on a shared state (watcher/service/leader.py): see `fenced`.
        self.fence: Callable[[Database], None] | None = None

    def __repr__(self) -> str:
        return f"Store({self.where!r})"

    @property
    def is_sqlite(self) -> bool:
        return self.dialect is SQLITE

    def fenced(self) -> None:
        """Inside an open transaction, a write with side effects (a new ledger entry, an
        outbox claim, the cycle's commit of alert states, notified marks and messages)
        calls this first: with a `fence` set (a leader on a shared state, DESIGN §10) it
        checks, in this same transaction, that the lease is still ours, and raises
        FencedOut (a StoreError) when it is not. Records of what already happened (a
        POST's outcome, a send's result) are not fenced: they are true whoever writes them.
        """
        if self.fence is not None:
            if self._depth == 0:
                raise RuntimeError("fenced() outside a transaction")
            self.fence(self)

    # -- life cycle ----------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; the store is unusable afterwards."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def checkpoint(self) -> None:
        """Copy every committed page into the main file and empty the `-wal` file.

        After it returns, a copy of the main database file alone holds every commit so
        far (the ledger calls it after each money write, before any POST). Skipped
        inside an open transaction. Raises StoreError when a reader keeps the
        checkpoint from completing within the busy timeout.
        """
        if self._depth > 0 or not self.is_sqlite:
            return  # PostgreSQL: a commit is durable on the server already
        busy, _, _ = self._run("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise StoreError(
                f"state database {self.where} failed: the write-ahead log could not be "
                "checkpointed (another process kept reading)"
            )

    def meta(self, key: str) -> str | None:
        """The value stored under `key` in `meta`, or None."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str | None) -> None:
        """Store (or, with None, delete) `key` in `meta`."""
        if value is None:
            self.execute("DELETE FROM meta WHERE key = ?", (key,))
            return
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- transactions --------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit of work: commits on normal exit, rolls back on any exception.

        The outermost call runs the dialect's `begin` (SQLite: `BEGIN IMMEDIATE`;
        PostgreSQL: `BEGIN` and the advisory lock every writer takes), so a read and
        the write that depends on it are atomic across processes; `transaction()` blocks
        nested inside it become savepoints of the same transaction (a failure inside one
        caught by the caller undoes only that block, and on PostgreSQL leaves the outer
        transaction usable). A single write (`execute`, `executemany`, `insert`, and the
        table methods made of one statement) inside an open transaction takes no
        savepoint: a statement is atomic by itself, and its StoreError, propagating, rolls
        the whole transaction back; catch it only outside, or around a nested block.
        Raises: StoreError when the database fails to begin or commit; the caller's own
        exception is re-raised unchanged after the rollback.
        """
        nested = self._depth > 0
        savepoint = f"sp{self._depth}"
        self._begin(savepoint if nested else None)
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            self._undo(savepoint if nested else None)
            raise
        self._depth -= 1
        try:
            self._run(f"RELEASE {savepoint}" if nested else "COMMIT")
        except StoreError:
            self._undo(savepoint if nested else None)
            raise

    def _begin(self, savepoint: str | None) -> None:
        if savepoint is not None:
            self._run(f"SAVEPOINT {savepoint}")
            return
        try:
            for statement in self.dialect.begin:
                self._run(statement)
        except StoreError:
            self._undo(None)
            raise

    def _undo(self, savepoint: str | None) -> None:
        if not self._conn.in_transaction:
            return  # the engine already rolled back (e.g. after a disk-full error)
        try:
            if savepoint is None:
                self._conn.execute("ROLLBACK")
            else:
                self._conn.execute(f"ROLLBACK TO {savepoint}")
                self._conn.execute(f"RELEASE {savepoint}")
        except self.dialect.errors as exc:
            log.error("store.rollback_failed", path=self.where, error=str(exc))

    def _failed(self, exc: Exception) -> StoreError:
        """A driver's error as the StoreError every store method raises."""
        return StoreError(f"state database {self.where} failed: {one_line(exc)}")

    # The hot paths below catch the driver's errors with a plain try/except: a
    # contextmanager per statement cost ~4% of the daemon's CPU at 1,000 accounts.

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            rows: list[Any] = self._conn.execute(sql, params).fetchall()
        except self.dialect.errors as exc:
            raise self._failed(exc) from exc
        return rows

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """One statement inside the caller's open transaction; out: the cursor."""
        try:
            return self._conn.execute(sql, params)
        except self.dialect.errors as exc:
            raise self._failed(exc) from exc

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        try:
            return self._conn.executemany(sql, rows)
        except self.dialect.errors as exc:
            raise self._failed(exc) from exc

    # -- extension seam: feature modules (outbox, ledger, silences) keep their SQL in
    # -- their own module, with their tables as a migration appended to MIGRATIONS.

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read query. Raises StoreError."""
        return self._query(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in the open transaction (no savepoint: see
        `transaction`), or as a transaction of its own; returns the rows changed.

        Raises StoreError.
        """
        if self._depth:
            return int(self._run(sql, params).rowcount)
        with self.transaction():
            return int(self._run(sql, params).rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one write statement for each row, in the open transaction or in one of
        its own. Raises StoreError."""
        if not rows:
            return 0
        if self._depth:
            return int(self._run_many(sql, rows).rowcount)
        with self.transaction():
            return int(self._run_many(sql, rows).rowcount)

    def execute_batches(self, *batches: tuple[str, Sequence[Sequence[Any]]]) -> None:
        """Each (statement, rows) that has rows, as `executemany`; more than one of them
        in a `transaction()` of their own (a savepoint inside an open one), atomically."""
        full = [(sql, rows) for sql, rows in batches if rows]
        if len(full) < 2:
            for sql, rows in full:
                self.executemany(sql, rows)
            return
        with self.transaction():
            for sql, rows in full:
                self.executemany(sql, rows)

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one `INSERT` into a table with an `id` key, in the open transaction or in
        one of its own; out: the new row's id.

        Raises StoreError.
        """
        if self._depth:
            return int(self._run(sql + " RETURNING id", params).fetchone()[0])
        with self.transaction():
            return int(self._run(sql + " RETURNING id", params).fetchone()[0])

    def sync_ids(self, table: str) -> None:
        """After rows were inserted into `table` with their `id` given, make the ids
        generated later follow the largest one (SQLite's AUTOINCREMENT does so itself).
        """
        if not self.is_sqlite:
            self.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT COALESCE(max(id), 0) + 1 FROM {table}), false)"
            )

    def pragma(self, name: str) -> Any:
        """The current value of `PRAGMA name` on this connection (for diagnostics).

        Out: None on PostgreSQL, which has no pragmas.
        Raises: ValueError for a name that is not a plain pragma identifier.
        """
        if not _PRAGMA_NAME.fullmatch(name):
            raise ValueError(f"not a pragma name: {name!r}")
        if not self.is_sqlite:
            return None
        rows = self._query(f"PRAGMA {name}")
        return rows[0][0] if rows else None


def one_line(exc: Exception) -> str:
    """A driver's error as one line (PostgreSQL's carry DETAIL/HINT lines)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
