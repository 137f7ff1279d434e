"""What every command shares: exit codes and the one-sentence `Exit` (watcher/cli/exits.py,
re-exported), opening the config and the state database with the errors DESIGN §7
promises."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from watcher.cli.exits import EXIT_INVALID as EXIT_INVALID
from watcher.cli.exits import EXIT_OK as EXIT_OK
from watcher.cli.exits import EXIT_RUNTIME as EXIT_RUNTIME
from watcher.cli.exits import EXIT_USAGE as EXIT_USAGE
from watcher.cli.exits import Exit as Exit
from watcher.config.secrets import SecretError
from watcher.config.settings import LoadedSettings, load_settings
from watcher.config.statecheck import resolve_state_url, url_problem
from watcher.config.yamlfile import ConfigError
from watcher.state.store import StateTarget, Store, StoreError, open_store, state_exists


def settings(path: Path) -> LoadedSettings:
    """The config at `path`; an invalid one prints every problem and exits 2."""
    try:
        return load_settings(path, environ=os.environ)
    except ConfigError as exc:
        raise invalid_config(path, exc) from None


def invalid_config(path: Path, exc: ConfigError) -> Exit:
    """Every problem on stderr, one a line; the command then ends with exit 2."""
    for line in exc.errors:
        print(line, file=sys.stderr)
    return Exit(EXIT_USAGE, f"invalid configuration in {path}")


def state_path(loaded: LoadedSettings) -> Path:
    """The SQLite state file (also where `state.url` is set: its lock and journal)."""
    return loaded.settings.state.resolve_state_path(os.environ, loaded.config_dir)


def state_target(loaded: LoadedSettings) -> StateTarget:
    """Where the state is: the SQLite file, or the resolved `state.url` (a secret: never
    print it; name it with `describe_target`). An unreadable reference or a malformed
    URL ends the command with exit 2."""
    try:
        url = resolve_state_url(
            loaded.settings.state, environ=os.environ, config_dir=loaded.config_dir
        )
    except SecretError as exc:
        raise Exit(EXIT_USAGE, f"state.url: {'; '.join(exc.errors)}") from None
    if url is None:
        return state_path(loaded)
    problem = url_problem(url.get_secret_value())
    if problem is not None:
        raise Exit(EXIT_USAGE, problem)
    return url.get_secret_value()


def has_state(target: StateTarget) -> bool:
    """Whether a state exists to read (commands that only read create none); an
    unreachable database ends the command with exit 3."""
    try:
        return state_exists(target)
    except StoreError as exc:
        raise Exit(EXIT_RUNTIME, str(exc)) from None


def open_state(loaded: LoadedSettings, target: StateTarget | None = None) -> Store:
    """The configured state database (SQLite or PostgreSQL); an unusable one ends the
    command with exit 3."""
    try:
        return open_store(state_target(loaded) if target is None else target)
    except StoreError as exc:
        raise Exit(EXIT_RUNTIME, str(exc)) from None


def state_problems(loaded: LoadedSettings) -> tuple[list[str], list[str]]:
    """`check`: errors and warnings of `state.url` (an unset reference is a warning, a
    malformed URL an error at the key; neither message contains the URL)."""
    try:
        url = resolve_state_url(
            loaded.settings.state, environ=os.environ, config_dir=loaded.config_dir
        )
    except SecretError as exc:
        return [], [f"state.url: {message}" for message in exc.errors]
    problem = None if url is None else url_problem(url.get_secret_value())
    if problem is None:
        return [], []
    line, col = (1, 1) if loaded.doc is None else loaded.doc.locate(("state", "url"))
    return [f"{loaded.path}:{line}:{col}: {problem}"], []
