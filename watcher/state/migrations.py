"""The state database's schema and identity: migrations, application id, file checks.

`MIGRATIONS` is the schema as a list of steps (append, never edit); `PRAGMA user_version`
counts the steps applied and `PRAGMA application_id` marks the file as ours. A file
that is not SQLite, belongs to another application, is corrupt or comes from a newer
version is refused with one sentence (`StoreError`), and nothing is written to it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import structlog

from watcher.state.db import Database, StoreError

log = structlog.get_logger("watcher.state.store")  # log lines unchanged by the split

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
    (  # keep_firing_for (watcher/core/lifecycle.py): when a firing alert's condition cleared
        "ALTER TABLE alerts ADD COLUMN clear_since TEXT",
    ),
    (  # the fraud hold on top-ups (watcher/state/holds.py, DESIGN §6.3)
        """CREATE TABLE topup_holds (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            account TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('rule', 'manual')),
            rule TEXT NOT NULL,
            episode TEXT NOT NULL,
            cause TEXT NOT NULL,
            held_at TEXT NOT NULL,
            last_at TEXT NOT NULL,
            held_by TEXT,
            released_at TEXT,
            released_by TEXT,
            release_reason TEXT,
            UNIQUE (account, rule, episode)
        ) STRICT""",
        "CREATE INDEX topup_holds_account ON topup_holds (account, released_at)",
    ),
    (  # step 7: the daily digest (watcher/state/digests.py, DESIGN §12): the days done,
        # and the alert history it reports (fired, escalated, resolved, events)
        """CREATE TABLE digests (
            day TEXT PRIMARY KEY,
            route TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('sent', 'skipped')),
            recorded_at TEXT NOT NULL,
            messages INTEGER NOT NULL
        ) STRICT""",
        """CREATE TABLE alert_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            rule TEXT NOT NULL,
            account TEXT NOT NULL,
            alert_group TEXT NOT NULL,
            reason TEXT NOT NULL,
            severity TEXT NOT NULL,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            detail TEXT NOT NULL
        ) STRICT""",
        "CREATE INDEX alert_history_account_at ON alert_history (account, at)",
    ),
    (  # step 8 (ack): acks, escalation, routes told (watcher/state/acks.py, DESIGN §5)
        "ALTER TABLE alerts ADD COLUMN notified_routes TEXT",
        "ALTER TABLE alerts ADD COLUMN escalated_at TEXT",
        """CREATE TABLE acks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            rule TEXT NOT NULL,
            account TEXT NOT NULL,
            alert_group TEXT NOT NULL,
            fired_at TEXT NOT NULL,
            severity TEXT NOT NULL,
            acked_by TEXT NOT NULL,
            reason TEXT NOT NULL,
            acked_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            announced INTEGER NOT NULL DEFAULT 0
        ) STRICT""",
    ),
    (  # step 10 (lease): the leader lease of instances sharing PostgreSQL (DESIGN §10,
        # watcher/state/lease.py); its times are the database's (TIMESTAMPTZ). SQLite has
        # no use for it (its flock decides), so there it stays empty and is not STRICT.
        """CREATE TABLE leader_lease (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            epoch BIGINT NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL
        )""",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

APPLICATION_ID = 0x41576174  # "AWat": `PRAGMA application_id` of every state database
"""Marks a SQLite file as an account-watcher state database; a file with another (or,
holding tables that are not ours, no) application id is never migrated over."""

SQLITE_HEADER = b"SQLite format 3\x00"
OUR_TABLES = frozenset({"meta", "cursors", "alerts"})
"""Tables every schema version has: a database from before the application id had them."""


def make_parent(path: Path) -> None:
    """Create the database's directory (mode 0o700). Raises StoreError."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StoreError(
            f"state database {path} is unusable: cannot create directory {path.parent} ({reason})"
        ) from exc


def check_header(path: Path) -> None:
    """An existing, non-empty file must start with the SQLite header. Raises StoreError."""
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


def identify(conn: sqlite3.Connection, path: Path) -> bool:
    """Refuse a database that is not ours.

    Out: True when it is a new, empty database (the schema is to be created in it).
    Raises: StoreError for another application's database.
    """
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if app_id == APPLICATION_ID:
        return False
    if app_id == 0 and not tables and version == 0:
        return True
    if app_id == 0 and 0 < version <= SCHEMA_VERSION and tables >= OUR_TABLES:
        return False  # written before the application id existed: adopted by migrate
    raise StoreError(
        f"state database {path} is unusable: it is not an account-watcher state "
        f"database (application id {app_id:#x}, {len(tables)} tables); move it away "
        "or point state.path at another file"
    )


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a corrupt database (`PRAGMA quick_check`). Raises StoreError."""
    problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        first = " ".join(str(problems[0]).split())
        raise StoreError(f"state database {path} is unusable: it is corrupt ({first})")


def migrate(
    db: Database,
    version: int,
    set_version: Callable[[int], object],
    *,
    created: bool,
    translate: Callable[[str], str] = str,
) -> None:
    """Bring the schema from `version` to `SCHEMA_VERSION`; run inside the caller's
    transaction, on either engine.

    In: the version found; how to record a new one (SQLite: `PRAGMA user_version`,
    PostgreSQL: the `schema_version` row); `created` when this open made the database
    (recorded as `meta.created_new`); `translate` turns a step's DDL into the engine's.
    Raises: StoreError for a schema newer than this version knows, or a failed step.
    """
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"state database {db.where} is unusable: it has schema version "
            f"{version}, written by a newer account-watcher (this one knows "
            f"{SCHEMA_VERSION})"
        )
    for target, statements in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in statements:
            db.execute(translate(statement))
        set_version(target)
        log.info("store.migrated", path=db.where, schema=target)
    if created:
        db.execute("INSERT INTO meta (key, value) VALUES ('created_new', '1')")
