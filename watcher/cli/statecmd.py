"""`account-watcher state migrate --to URL`: copy a SQLite state into PostgreSQL.

From the configured SQLite file (`state.path` or its default) into an empty PostgreSQL
state, every table as it is, in one transaction: the copy is whole or nothing. The target
is migrated to the current schema first, so both sides have the same tables; identity
sequences then follow the copied ids. While a daemon holds the SQLite lock (DESIGN §6.1)
nothing is copied: its next write would be lost. The lock is held until the copy ends,
so no daemon can start on the file meanwhile.

`--to` takes a URL or a secret reference (`env:NAME`, `file:PATH`, `credential:NAME`):
prefer a reference, since a URL with a password on the command line is visible to every
user of the machine in the process list. Messages name the database without the password.
Afterwards: set `state.url` (a reference) instead of `state.path` and start the daemons.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TextIO

from watcher.cli.common import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, Exit, settings, state_path
from watcher.config.secrets import SecretError, parse_ref, resolve
from watcher.state import lock as statelock
from watcher.state.store import Store, StoreError, open_store

SCHEMES = ("postgresql://", "postgres://")
KEPT = frozenset({"meta"})  # rows the target may hold before the copy (replaced by it)


def cmd_state(path: Path, args: argparse.Namespace, out: TextIO) -> int:
    loaded = settings(path)
    if loaded.settings.state.url is not None:
        raise Exit(EXIT_USAGE, f"the state of {path} is already on PostgreSQL (state.url)")
    source = state_path(loaded)
    if not source.exists():
        raise Exit(EXIT_RUNTIME, f"there is no state to migrate: {source} does not exist")
    url = _target(args.to, loaded.config_dir)
    try:
        held = statelock.acquire(source)
    except OSError as exc:
        raise Exit(EXIT_RUNTIME, f"cannot lock the state {source}: {exc}") from None
    if held is None:
        raise Exit(
            EXIT_RUNTIME,
            f"a daemon (run) is using {source}; stop it first (systemctl stop account-watcher)",
        )
    with held:
        try:
            with Store.open(source) as src, open_store(url) as dst:
                tables, rows = copy_state(src, dst)
                where = dst.where
        except StoreError as exc:
            raise Exit(EXIT_RUNTIME, str(exc)) from None
    print(
        f"copied {rows} row(s) of {tables} table(s) from {source} to {where}; "
        "now set state.url (a secret reference) instead of state.path and start the daemon",
        file=out,
    )
    return EXIT_OK


def _target(text: str, config_dir: Path) -> str:
    ref = parse_ref(text)
    if ref is not None:
        try:
            text = resolve(ref, environ=os.environ, base_dir=config_dir).get_secret_value()
        except SecretError as exc:
            raise Exit(EXIT_USAGE, str(exc)) from None
    text = text.strip()
    if not text.startswith(SCHEMES):
        raise Exit(EXIT_USAGE, "--to must be a postgresql:// URL (or a reference to one)")
    return text


def copy_state(src: Store, dst: Store) -> tuple[int, int]:
    """Every table of `src` into `dst`, in one transaction of `dst`. Out: (tables, rows).

    Raises StoreError when `dst` already holds a state (any row outside `meta`).
    """
    tables = [
        str(name)
        for (name,) in src.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    copied = 0
    with dst.transaction():
        for table in tables:
            if table not in KEPT and dst.query(f"SELECT 1 FROM {table} LIMIT 1"):  # noqa: S608
                raise StoreError(
                    f"{dst.where} already holds a state (table {table} has rows); "
                    "migrate only into an empty database"
                )
        for table in tables:
            copied += _copy_table(src, dst, table)
    return len(tables), copied


def _copy_table(src: Store, dst: Store, table: str) -> int:
    info = src.query(f"PRAGMA table_info({table})")
    columns = [str(row[1]) for row in info]
    names = ", ".join(columns)
    rows = src.query(f"SELECT {names} FROM {table} ORDER BY rowid")  # noqa: S608
    marks = ", ".join("?" for _ in columns)
    if table in KEPT:  # what the target's own creation wrote (e.g. `created_new`) goes
        dst.execute(f"DELETE FROM {table}")  # noqa: S608
    insert = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608
    dst.executemany(insert, [tuple(row) for row in rows])
    if any(row[1] == "id" and row[5] and str(row[2]).upper() == "INTEGER" for row in info):
        dst.sync_ids(table)
    return len(rows)
