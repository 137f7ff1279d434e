"""What every command shares: exit codes, the one-sentence `Exit`, and opening the
config and the state database with the errors DESIGN §7 promises."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from watcher.config.settings import LoadedSettings, load_settings
from watcher.config.yamlfile import ConfigError
from watcher.state.store import Store, StoreError

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3


class Exit(Exception):
    """Ends the command with a code and an optional one-sentence message."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code


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
    return loaded.settings.state.resolve_state_path(os.environ, loaded.config_dir)


def open_state(loaded: LoadedSettings) -> Store:
    """The configured state database; an unusable one ends the command with exit 3."""
    try:
        return Store.open(state_path(loaded))
    except StoreError as exc:
        raise Exit(EXIT_RUNTIME, str(exc)) from None
