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

Transactions: `BEGIN IMMEDIATE` for the outermost `transaction()`; every write method
runs inside `transaction()`, so inside an open one it joins it (as a SAVEPOINT, which
makes the nested call atomic without a second BEGIN).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog

from watcher.core.model import (
    AlertKey,
    AlertState,
    AuditEvent,
    Balance,
    Phase,
    Severity,
    WebhookDelivery,
)

log = structlog.get_logger(__name__)

BUSY_TIMEOUT_MS = 5000

# Each entry migrates the schema from version i to i + 1; append, never edit.
# Statements run one by one inside one BEGIN IMMEDIATE (executescript would commit).
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) STRICT""",
        """CREATE TABLE cursors (
            account TEXT NOT NULL,
            source TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (account, source)
        ) STRICT""",
        """CREATE TABLE audit_seen (
            account TEXT NOT NULL,
            id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            seen_at TEXT NOT NULL,
            PRIMARY KEY (account, id)
        ) STRICT""",
        "CREATE INDEX audit_seen_seen_at ON audit_seen (seen_at)",
        """CREATE TABLE balance_samples (
            account TEXT NOT NULL,
            at TEXT NOT NULL,
            balance TEXT NOT NULL,
            available_credit TEXT NOT NULL,
            credit_limit TEXT NOT NULL,
            pending TEXT NOT NULL,
            currency TEXT NOT NULL,
            PRIMARY KEY (account, at)
        ) STRICT""",
        "CREATE INDEX balance_samples_at ON balance_samples (at)",
        """CREATE TABLE webhook_failures (
            account TEXT NOT NULL,
            id TEXT NOT NULL,
            started_at TEXT NOT NULL,
            status TEXT NOT NULL,
            event_type TEXT NOT NULL,
            url TEXT NOT NULL,
            http_status INTEGER,
            error TEXT NOT NULL,
            PRIMARY KEY (account, id)
        ) STRICT""",
        "CREATE INDEX webhook_failures_started ON webhook_failures (account, started_at)",
        """CREATE TABLE alerts (
            rule TEXT NOT NULL,
            account TEXT NOT NULL,
            alert_group TEXT NOT NULL,
            phase TEXT NOT NULL,
            severity TEXT NOT NULL,
            active_since TEXT NOT NULL,
            fired_at TEXT,
            last_notified_at TEXT,
            notified_severity TEXT,
            value TEXT NOT NULL,
            threshold TEXT NOT NULL,
            PRIMARY KEY (rule, account, alert_group)
        ) STRICT""",
        """CREATE TABLE source_health (
            account TEXT NOT NULL,
            source TEXT NOT NULL,
            last_attempt TEXT NOT NULL,
            last_ok TEXT,
            failing_since TEXT,
            last_error TEXT,
            auth INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (account, source)
        ) STRICT""",
        """CREATE TABLE last_cycle (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            at TEXT NOT NULL,
            duration_s REAL NOT NULL,
            errors INTEGER NOT NULL
        ) STRICT""",
    ),
    (  # the durable outbox (watcher/notify/outbox.py) and silences (watcher/state/silences.py)
        """CREATE TABLE outbox_messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL,
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            severity TEXT NOT NULL,
            rule TEXT NOT NULL,
            account TEXT NOT NULL,
            reason TEXT NOT NULL
        ) STRICT""",
        """CREATE TABLE outbox_targets (
            message_id INTEGER NOT NULL REFERENCES outbox_messages (id) ON DELETE CASCADE,
            route TEXT NOT NULL,
            url_id TEXT NOT NULL,
            url_masked TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT,
            delivered_at TEXT,
            PRIMARY KEY (message_id, route, url_id)
        ) STRICT""",
        "CREATE INDEX outbox_targets_due ON outbox_targets (state, next_attempt_at)",
        """CREATE TABLE route_health (
            route TEXT PRIMARY KEY,
            consecutive_failures INTEGER NOT NULL,
            alerted INTEGER NOT NULL DEFAULT 0
        ) STRICT""",
        """CREATE TABLE silences (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            rule_glob TEXT NOT NULL,
            account TEXT,
            reason TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            ended_handled INTEGER NOT NULL DEFAULT 0
        ) STRICT""",
    ),
    (  # the top-up ledger and its kill switch (watcher/state/ledger.py)
        """CREATE TABLE topups (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            account TEXT NOT NULL,
            amount TEXT NOT NULL,
            currency TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('sending', 'unknown', 'succeeded', 'failed', 'dry_run', 'refused')),
            created_at TEXT NOT NULL,
            posted_at TEXT,
            finished_at TEXT,
            transaction_id TEXT,
            error TEXT,
            rule TEXT NOT NULL,
            reason TEXT NOT NULL,
            episode TEXT,
            balance_before TEXT,
            verify_state TEXT,
            announce INTEGER NOT NULL DEFAULT 0,
            settled_by TEXT,
            settled_at TEXT,
            settle_reason TEXT
        ) STRICT""",
        "CREATE INDEX topups_account_created ON topups (account, created_at)",
        "CREATE INDEX topups_state ON topups (state)",
        """CREATE TABLE topup_pause (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            paused_at TEXT NOT NULL,
            paused_by TEXT NOT NULL,
            reason TEXT NOT NULL
        ) STRICT""",
    ),
    (  # outbox claims (watcher/notify/outbox.py): who is sending a target, since when
        "ALTER TABLE outbox_targets ADD COLUMN claimed_by TEXT",
        "ALTER TABLE outbox_targets ADD COLUMN claimed_at TEXT",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

APPLICATION_ID = 0x41576174  # "AWat": `PRAGMA application_id` of every state database
"""Marks a SQLite file as an account-watcher state database; a file with another (or,
holding tables that are not ours, no) application id is never migrated over."""

SQLITE_HEADER = b"SQLite format 3\x00"
OUR_TABLES = frozenset({"meta", "cursors", "alerts"})
"""Tables every schema version has: a database from before the application id had them."""

_PRAGMA_NAME = re.compile(r"[a-z_]+")


class StoreError(Exception):
    """The state database cannot be opened or used; the message is one sentence."""


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """How one source of one account fared; `failing_since` is None while it works."""

    account: str
    source: str
    last_attempt: datetime
    last_ok: datetime | None
    failing_since: datetime | None
    last_error: str | None
    auth: bool


@dataclass(frozen=True, slots=True)
class CycleInfo:
    """The last finished poll cycle."""

    at: datetime
    duration_s: float
    errors: int


def ts(value: datetime) -> str:
    """A UTC datetime as stored: ISO 8601 text with microseconds (sorts as time)."""
    return _ts(value)


def dt(text: str) -> datetime:
    """A stored timestamp back to an aware UTC datetime."""
    return _dt(text)


def _ts(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to the store; use UTC")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _ts_or_none(value: datetime | None) -> str | None:
    return None if value is None else _ts(value)


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _dt_or_none(text: str | None) -> datetime | None:
    return None if text is None else _dt(text)


class Store:
    """The SQLite state store. Create it with `Store.open(path)`; close it when done."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._depth = 0
        self.created = False  # this open created the schema in an empty database

    def __repr__(self) -> str:
        return f"Store(path={str(self.path)!r})"

    # -- life cycle ----------------------------------------------------------------

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
        _make_parent(path)
        _check_header(path)
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise _unusable(path, exc) from exc
        store = cls(path, conn)
        try:
            store._identify()
            store._configure()
            store._check_integrity()
            store._migrate()
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

    def _identify(self) -> None:
        """Refuse a database that is not ours; note whether it is a new, empty one."""
        app_id = int(self._conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {
            row[0]
            for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if app_id == APPLICATION_ID:
            return
        if app_id == 0 and not tables and version == 0:
            self.created = True
            return
        if app_id == 0 and 0 < version <= SCHEMA_VERSION and tables >= OUR_TABLES:
            return  # written before the application id existed: adopted by _migrate
        raise StoreError(
            f"state database {self.path} is unusable: it is not an account-watcher state "
            f"database (application id {app_id:#x}, {len(tables)} tables); move it away "
            "or point state.path at another file"
        )

    def _configure(self) -> None:
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"state database {self.path} is unusable: cannot switch it to WAL mode "
                f"(journal mode stays {mode})"
            )
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = ON")

    def _check_integrity(self) -> None:
        problems = [row[0] for row in self._conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            first = " ".join(str(problems[0]).split())
            raise StoreError(f"state database {self.path} is unusable: it is corrupt ({first})")

    def _migrate(self) -> None:
        with self.transaction():
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"state database {self.path} is unusable: it has schema version "
                    f"{version}, written by a newer account-watcher (this one knows "
                    f"{SCHEMA_VERSION})"
                )
            for target, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {target}")
                log.info("store.migrated", path=str(self.path), schema=target)
            self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            if self.created:
                self._conn.execute("INSERT INTO meta (key, value) VALUES ('created_new', '1')")

    def checkpoint(self) -> None:
        """Copy every committed page into the main file and empty the `-wal` file.

        After it returns, a copy of the main database file alone holds every commit so
        far (the ledger calls it after each money write, before any POST). Skipped
        inside an open transaction. Raises StoreError when a reader keeps the
        checkpoint from completing within the busy timeout.
        """
        if self._depth > 0:
            return
        with self._errors():
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise StoreError(
                f"state database {self.path} failed: the write-ahead log could not be "
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

        The outermost call runs `BEGIN IMMEDIATE`; calls nested inside it (including
        every write method) become savepoints of the same transaction.
        Raises: StoreError when SQLite fails to begin or commit; the caller's own
        exception is re-raised unchanged after the rollback.
        """
        nested = self._depth > 0
        savepoint = f"sp{self._depth}"
        with self._errors():
            self._conn.execute(f"SAVEPOINT {savepoint}" if nested else "BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            self._undo(savepoint if nested else None)
            raise
        self._depth -= 1
        try:
            with self._errors():
                self._conn.execute(f"RELEASE {savepoint}" if nested else "COMMIT")
        except StoreError:
            self._undo(savepoint if nested else None)
            raise

    def _undo(self, savepoint: str | None) -> None:
        if not self._conn.in_transaction:
            return  # SQLite already rolled back (e.g. after a disk-full error)
        try:
            if savepoint is None:
                self._conn.execute("ROLLBACK")
            else:
                self._conn.execute(f"ROLLBACK TO {savepoint}")
                self._conn.execute(f"RELEASE {savepoint}")
        except sqlite3.Error as exc:
            log.error("store.rollback_failed", path=str(self.path), error=str(exc))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"state database {self.path} failed: {exc}") from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._errors():
            return self._conn.execute(sql, params).fetchall()

    # -- extension seam: feature modules (outbox, ledger, silences) keep their SQL in
    # -- their own module, with their tables as a migration appended to MIGRATIONS.

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read query. Raises StoreError."""
        return self._query(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in (or as) a transaction; returns the rows changed.

        Raises StoreError.
        """
        with self.transaction(), self._errors():
            return self._conn.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one write statement for each row, in one transaction. Raises StoreError."""
        with self.transaction(), self._errors():
            return self._conn.executemany(sql, rows).rowcount

    def pragma(self, name: str) -> Any:
        """The current value of `PRAGMA name` on this connection (for diagnostics).

        Raises: ValueError for a name that is not a plain pragma identifier.
        """
        if not _PRAGMA_NAME.fullmatch(name):
            raise ValueError(f"not a pragma name: {name!r}")
        rows = self._query(f"PRAGMA {name}")
        return rows[0][0] if rows else None

    # -- first start and cursors ---------------------------------------------------

    def first_start(self, now: datetime) -> datetime:
        """The daemon's very first start: records `now` on the first call ever.

        Out: the recorded first start (the same value on every later call and reopen).
        """
        with self.transaction(), self._errors():
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('first_start', ?)", (_ts(now),)
            )
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'first_start'")
            value: str = row.fetchone()[0]
        return _dt(value)

    def get_cursor(self, account: str, source: str) -> datetime | None:
        """The cursor of `source` for `account`, or None when never set."""
        rows = self._query(
            "SELECT value FROM cursors WHERE account = ? AND source = ?", (account, str(source))
        )
        return _dt(rows[0][0]) if rows else None

    def set_cursor(self, account: str, source: str, value: datetime) -> None:
        """Store the cursor of `source` for `account` (replacing the previous one)."""
        with self.transaction(), self._errors():
            self._conn.execute(
                "INSERT INTO cursors (account, source, value) VALUES (?, ?, ?) "
                "ON CONFLICT (account, source) DO UPDATE SET value = excluded.value",
                (account, str(source), _ts(value)),
            )

    def get_resume(self, account: str, source: str) -> str | None:
        """Where an unfinished read of `source` goes on (text the source wrote), or None.

        Kept in the cursors table under `<source>#resume`.
        """
        rows = self._query(
            "SELECT value FROM cursors WHERE account = ? AND source = ?",
            (account, _resume_key(source)),
        )
        return str(rows[0][0]) if rows else None

    def set_resume(self, account: str, source: str, value: str | None) -> None:
        """Store where the unfinished read of `source` goes on; None: the read is done."""
        key = _resume_key(source)
        with self.transaction(), self._errors():
            if value is None:
                self._conn.execute(
                    "DELETE FROM cursors WHERE account = ? AND source = ?", (account, key)
                )
                return
            self._conn.execute(
                "INSERT INTO cursors (account, source, value) VALUES (?, ?, ?) "
                "ON CONFLICT (account, source) DO UPDATE SET value = excluded.value",
                (account, key, value),
            )

    # -- audit ids -----------------------------------------------------------------

    def unseen_audit_events(self, account: str, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """The events whose id was never marked seen for `account`.

        Out: input order kept; an id repeated within `events` appears once (first one).
        """
        if not events:
            return []
        ids = json.dumps([event.id for event in events])
        rows = self._query(
            "SELECT id FROM audit_seen WHERE account = ? "
            "AND id IN (SELECT value FROM json_each(?))",
            (account, ids),
        )
        skip = {row[0] for row in rows}
        unseen: list[AuditEvent] = []
        for event in events:
            if event.id not in skip:
                skip.add(event.id)
                unseen.append(event)
        return unseen

    def mark_audit_seen(self, account: str, events: Sequence[AuditEvent], now: datetime) -> None:
        """Record the events' ids as seen at `now`; ids already recorded keep their time."""
        rows = [(account, event.id, _ts(event.created_at), _ts(now)) for event in events]
        with self.transaction(), self._errors():
            self._conn.executemany(
                "INSERT OR IGNORE INTO audit_seen (account, id, created_at, seen_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )

    # -- balance samples -----------------------------------------------------------

    def add_balance_sample(self, account: str, at: datetime, balance: Balance) -> None:
        """Store one balance sample; a second sample at the same instant replaces it."""
        with self.transaction(), self._errors():
            self._conn.execute(
                "INSERT OR REPLACE INTO balance_samples (account, at, balance, "
                "available_credit, credit_limit, pending, currency) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    account,
                    _ts(at),
                    str(balance.balance),
                    str(balance.available_credit),
                    str(balance.credit_limit),
                    str(balance.pending),
                    balance.currency,
                ),
            )

    def balance_samples(self, account: str, since: datetime) -> list[tuple[datetime, Balance]]:
        """Samples of `account` taken at or after `since`, oldest first."""
        rows = self._query(
            "SELECT at, balance, available_credit, credit_limit, pending, currency "
            "FROM balance_samples WHERE account = ? AND at >= ? ORDER BY at",
            (account, _ts(since)),
        )
        return [
            (
                _dt(at),
                Balance(
                    balance=Decimal(bal),
                    available_credit=Decimal(avail),
                    credit_limit=Decimal(limit),
                    pending=Decimal(pending),
                    currency=currency,
                ),
            )
            for at, bal, avail, limit, pending, currency in rows
        ]

    # -- webhook failures ----------------------------------------------------------

    def upsert_webhook_failures(self, account: str, deliveries: Sequence[WebhookDelivery]) -> int:
        """Store failed deliveries; a known id is updated in place, not duplicated.

        Out: how many ids were not stored before.
        """
        new = 0
        with self.transaction(), self._errors():
            for delivery in deliveries:
                row = _delivery_row(account, delivery)
                inserted = self._conn.execute(
                    "INSERT OR IGNORE INTO webhook_failures (account, id, started_at, "
                    "status, event_type, url, http_status, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                ).rowcount
                if inserted:
                    new += 1
                    continue
                self._conn.execute(
                    "UPDATE webhook_failures SET started_at = ?, status = ?, event_type = ?, "
                    "url = ?, http_status = ?, error = ? WHERE account = ? AND id = ?",
                    (*row[2:], account, delivery.id),
                )
        return new

    def webhook_failures(self, account: str, since: datetime) -> list[WebhookDelivery]:
        """Stored failed deliveries of `account` started at or after `since`, oldest first.

        Rows are read one by one (never all of them as well as the result), and texts
        that repeat from row to row (status, event type, URL, error) are one object each,
        so that a window of 50,000 failures costs a few MB, not tens.
        """
        shared: dict[str, str] = {}

        def one(text: str) -> str:
            return shared.setdefault(text, text)

        with self._errors():
            rows = self._conn.execute(
                "SELECT id, started_at, status, event_type, url, http_status, error "
                "FROM webhook_failures WHERE account = ? AND started_at >= ? "
                "ORDER BY started_at, id",
                (account, _ts(since)),
            )
            return [
                WebhookDelivery(
                    id=id_,
                    started_at=_dt(started_at),
                    status=one(status),
                    event_type=one(event_type),
                    url=one(url),
                    http_status=http_status,
                    error=one(error),
                )
                for id_, started_at, status, event_type, url, http_status, error in rows
            ]

    # -- alert states --------------------------------------------------------------

    def load_alerts(self) -> dict[AlertKey, AlertState]:
        """Every persisted alert state, by key (ordered by key).

        Raises: StoreError when a row holds an unknown phase or severity.
        """
        rows = self._query(
            "SELECT rule, account, alert_group, phase, severity, active_since, fired_at, "
            "last_notified_at, notified_severity, value, threshold "
            "FROM alerts ORDER BY rule, account, alert_group"
        )
        states = (self._alert_from_row(row) for row in rows)
        return {state.key: state for state in states}

    def _alert_from_row(self, row: Sequence[Any]) -> AlertState:
        rule, account, group, phase, severity, active, fired, notified, notified_sev = row[:9]
        try:
            return AlertState(
                key=AlertKey(rule=rule, account=account, group=group),
                phase=Phase(phase),
                severity=Severity[severity],
                active_since=_dt(active),
                fired_at=_dt_or_none(fired),
                last_notified_at=_dt_or_none(notified),
                notified_severity=None if notified_sev is None else Severity[notified_sev],
                value=row[9],
                threshold=row[10],
            )
        except (KeyError, ValueError) as exc:
            raise StoreError(
                f"state database {self.path} holds an unreadable alert state for "
                f"{rule}/{account}: {exc}"
            ) from exc

    def save_alerts(self, states: Mapping[AlertKey, AlertState]) -> None:
        """Replace the whole set of alert states (keys absent from `states` are deleted)."""
        rows = [_alert_row(state) for state in states.values()]
        with self.transaction(), self._errors():
            self._conn.execute("DELETE FROM alerts")
            self._conn.executemany(
                "INSERT INTO alerts (rule, account, alert_group, phase, severity, "
                "active_since, fired_at, last_notified_at, notified_severity, value, "
                "threshold) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    # -- source health -------------------------------------------------------------

    def record_source_result(
        self, account: str, source: str, now: datetime, error: str | None, *, auth: bool = False
    ) -> None:
        """Record one attempt to read `source` of `account` at `now`.

        In: `error` None for a success; otherwise the failure message, with `auth` set
        when the API rejected the key. A failure keeps an earlier `failing_since`.
        """
        at = _ts(now)
        if error is None:
            sql = (
                "INSERT INTO source_health (account, source, last_attempt, last_ok, "
                "failing_since, last_error, auth) VALUES (?, ?, ?, ?, NULL, NULL, 0) "
                "ON CONFLICT (account, source) DO UPDATE SET last_attempt = excluded.last_attempt, "
                "last_ok = excluded.last_ok, failing_since = NULL, last_error = NULL, auth = 0"
            )
            params: tuple[Any, ...] = (account, str(source), at, at)
        else:
            sql = (
                "INSERT INTO source_health (account, source, last_attempt, last_ok, "
                "failing_since, last_error, auth) VALUES (?, ?, ?, NULL, ?, ?, ?) "
                "ON CONFLICT (account, source) DO UPDATE SET last_attempt = excluded.last_attempt, "
                "failing_since = COALESCE(failing_since, excluded.failing_since), "
                "last_error = excluded.last_error, auth = excluded.auth"
            )
            params = (account, str(source), at, at, error, int(auth))
        with self.transaction(), self._errors():
            self._conn.execute(sql, params)

    def source_health(self) -> list[SourceHealth]:
        """Health of every source ever attempted, ordered by account and source."""
        rows = self._query(
            "SELECT account, source, last_attempt, last_ok, failing_since, last_error, auth "
            "FROM source_health ORDER BY account, source"
        )
        return [
            SourceHealth(
                account=account,
                source=source,
                last_attempt=_dt(attempt),
                last_ok=_dt_or_none(ok),
                failing_since=_dt_or_none(failing),
                last_error=last_error,
                auth=bool(auth),
            )
            for account, source, attempt, ok, failing, last_error, auth in rows
        ]

    # -- cycles --------------------------------------------------------------------

    def record_cycle(self, now: datetime, *, duration_s: float, errors: int) -> None:
        """Remember the cycle that started at `now` (only the last one is kept)."""
        with self.transaction(), self._errors():
            self._conn.execute(
                "INSERT OR REPLACE INTO last_cycle (id, at, duration_s, errors) "
                "VALUES (1, ?, ?, ?)",
                (_ts(now), float(duration_s), int(errors)),
            )

    def last_cycle(self) -> CycleInfo | None:
        """The last recorded cycle, or None before the first one."""
        rows = self._query("SELECT at, duration_s, errors FROM last_cycle WHERE id = 1")
        if not rows:
            return None
        at, duration_s, errors = rows[0]
        return CycleInfo(at=_dt(at), duration_s=duration_s, errors=errors)

    # -- size ----------------------------------------------------------------------

    def prune(
        self,
        now: datetime,
        *,
        keep_samples: timedelta = timedelta(days=8),
        keep_seen: timedelta = timedelta(days=3),
        keep_failures: timedelta = timedelta(days=2),
    ) -> dict[str, int]:
        """Delete rows older than their retention, measured back from `now`.

        Audit ids go only when both their event and their sighting are older than
        `keep_seen`, so an id that a re-read may still return is never forgotten.
        Out: rows deleted per table (`balance_samples`, `audit_seen`, `webhook_failures`).
        """
        seen_cutoff = _ts(now - keep_seen)
        statements = {
            "balance_samples": (
                "DELETE FROM balance_samples WHERE at < ?",
                (_ts(now - keep_samples),),
            ),
            "audit_seen": (
                "DELETE FROM audit_seen WHERE seen_at < ? AND created_at < ?",
                (seen_cutoff, seen_cutoff),
            ),
            "webhook_failures": (
                "DELETE FROM webhook_failures WHERE started_at < ?",
                (_ts(now - keep_failures),),
            ),
        }
        deleted: dict[str, int] = {}
        with self.transaction(), self._errors():
            for table, (sql, params) in statements.items():
                deleted[table] = self._conn.execute(sql, params).rowcount
        if any(deleted.values()):
            log.debug("store.pruned", path=str(self.path), **deleted)
        return deleted


def _resume_key(source: str) -> str:
    return f"{source}#resume"


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StoreError(
            f"state database {path} is unusable: cannot create directory {path.parent} ({reason})"
        ) from exc


def _check_header(path: Path) -> None:
    """An existing, non-empty file must start with the SQLite header."""
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(
            f"state database {path} is unusable: cannot read it ({exc.strerror or exc})"
        ) from exc
    if head and head != SQLITE_HEADER:
        raise StoreError(
            f"state database {path} is unusable: it is not a SQLite database; move it "
            "away or point state.path at another file"
        )


def _unusable(path: Path, exc: sqlite3.Error) -> StoreError:
    return StoreError(f"state database {path} is unusable: {exc}")


def _delivery_row(account: str, delivery: WebhookDelivery) -> tuple[Any, ...]:
    return (
        account,
        delivery.id,
        _ts(delivery.started_at),
        delivery.status,
        delivery.event_type,
        delivery.url,
        delivery.http_status,
        delivery.error,
    )


def _alert_row(state: AlertState) -> tuple[Any, ...]:
    notified = state.notified_severity
    return (
        state.key.rule,
        state.key.account,
        state.key.group,
        state.phase.value,
        state.severity.name,
        _ts(state.active_since),
        _ts_or_none(state.fired_at),
        _ts_or_none(state.last_notified_at),
        None if notified is None else notified.name,
        state.value,
        state.threshold,
    )
