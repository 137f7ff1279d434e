"""`check`: the config, every rule file, the notification URLs and the state, every
problem printed at once (exit 1 when any is an error)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from watcher.cli import notify as cli_notify
from watcher.cli import webserve as cli_web
from watcher.cli.common import EXIT_INVALID, EXIT_OK, state_problems
from watcher.config.rulecheck import validate
from watcher.config.ruleload import load_rules
from watcher.config.settings import check_secrets, load_settings
from watcher.config.yamlfile import ConfigError, load_yaml
from watcher.providers.registry import capabilities


def cmd_check(path: Path, out: TextIO, err: TextIO) -> int:
    """Validate config and rules; every problem printed at once."""
    try:
        loaded = load_settings(path, environ=os.environ)
    except ConfigError as exc:
        # Every problem at once: the rule files are still checked on their own.
        for line in exc.errors + _rule_file_errors(path):
            print(line, file=err)
        return EXIT_INVALID
    found = load_rules(loaded.settings.rules, loaded.config_dir)
    errors, warnings = validate(loaded, found, datetime.now(UTC), capabilities(), for_check=True)
    urls = cli_notify.url_problems(loaded, os.environ)
    errors += urls.errors
    warnings += check_secrets(
        loaded.settings, environ=os.environ, config_dir=loaded.config_dir, routes=False
    )
    warnings += urls.warnings + cli_web.token_warnings(loaded)
    state_errors, state_warnings = state_problems(loaded)
    errors += state_errors
    warnings += state_warnings
    for line in warnings:
        print(f"warning: {line}", file=err)
    for line in errors:
        print(line, file=err)
    if errors:
        return EXIT_INVALID
    print(
        f"ok: {path}: {len(loaded.settings.accounts)} account(s), "
        f"{len(found.files)} rule file(s), {len(found.rules)} rule(s)",
        file=out,
    )
    return EXIT_OK


def _rule_file_errors(path: Path) -> list[str]:
    """Errors of the rule files an invalid config names (its `rules:` globs if readable,
    else the default)."""
    try:
        data = load_yaml(path).data
    except ConfigError:
        data = None
    patterns = data.get("rules") if isinstance(data, dict) else None
    if not (isinstance(patterns, list) and all(isinstance(p, str) for p in patterns)):
        patterns = ["rules/*.yaml"]
    return load_rules(patterns, path.parent).errors
