"""`status` and `silence`: what the state says, and the silences in it (DESIGN §7)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from watcher.cli import notify as cli_notify
from watcher.cli import topups as cli_topups
from watcher.cli.accounts import account_lines, account_views
from watcher.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    Exit,
    has_state,
    open_state,
    settings,
    state_target,
)
from watcher.cli.status_json import VERSION, status_document
from watcher.cli.summary import alert_lines
from watcher.config.ruleload import load_rules
from watcher.config.settings import LoadedSettings
from watcher.core.rules import SOURCE_DOWN_RULE
from watcher.core.silences import unmatched_warning
from watcher.core.topup_unavailable import TOPUP_UNAVAILABLE_RULE
from watcher.notify.flush import NOTIFIER_RULE
from watcher.notify.outbox import Outbox
from watcher.state.acks import alerts_now
from watcher.state.alerts import CycleInfo, SourceHealth
from watcher.state.silences import Silences
from watcher.state.store import describe_target

# ---------------------------------------------------------------------------- status


def cmd_status(path: Path, out: TextIO, *, as_json: bool = False) -> int:
    """Accounts, alerts (with acks), last poll per source and the last cycle, from the
    state database; `as_json`: one JSON document (watcher/cli/status_json.py)."""
    loaded = settings(path)
    target = state_target(loaded)
    where = describe_target(target)
    if not has_state(target):
        if as_json:
            print(
                json.dumps({"version": VERSION, "state": where, "error": "no state yet"}),
                file=out,
            )
        else:
            print(f"no state yet at {where}: the daemon has not run", file=out)
        return EXIT_OK
    now = cli_notify.now_utc()
    with open_state(loaded, target) as store:
        alerts = alerts_now(store, now)
        if as_json:
            document = status_document(
                where=where,
                now=now,
                cycle=store.last_cycle(),
                accounts=account_views(loaded, store),
                sources=store.source_health(),
                alerts=alerts.values(),
                silences=Silences(store).active(now),
                undelivered=Outbox(store).backlog(),
            )
            print(json.dumps(document, indent=2), file=out)
            return EXIT_OK
        lines = [f"state: {where}", *_cycle_lines(store.last_cycle())]
        lines += account_lines(account_views(loaded, store))
        lines += _source_lines(store.source_health())
        lines += alert_lines(alerts.values())
        lines += cli_notify.status_lines(store, now, alerts.values())
        lines += cli_topups.status_lines(store, loaded.settings, now)
    print("\n".join(lines), file=out)
    return EXIT_OK


def _cycle_lines(cycle: CycleInfo | None) -> list[str]:
    if cycle is None:
        return ["last cycle: never"]
    return [
        f"last cycle: {cycle.at:%Y-%m-%d %H:%M:%S} UTC, {cycle.duration_s:.2f}s, "
        f"{cycle.errors} source error(s)"
    ]


def _source_lines(health: Sequence[SourceHealth]) -> list[str]:
    lines = ["sources:"]
    for h in health:
        ok = f"{h.last_ok:%Y-%m-%d %H:%M:%S} UTC" if h.last_ok else "never"
        state = (
            f"FAILING since {h.failing_since:%Y-%m-%d %H:%M:%S} UTC: {h.last_error}"
            if h.failing_since
            else "ok"
        )
        lines.append(f"  {h.account}/{h.source}: last ok {ok}; {state}")
    return lines


# ---------------------------------------------------------------------------- silence


def cmd_silence(path: Path, args: argparse.Namespace) -> int:
    """`silence add|list|expire` against the state database of the config.

    `add` with an unknown `--account` is a usage error (exit 2); a glob that matches no
    rule of the loaded config (or built-in rule) is warned on stderr and still added.
    """
    loaded = settings(path)
    if args.action == "add":
        check_silence_scope(loaded, args.rule_glob, args.account)
    with open_state(loaded) as store:
        try:
            return cli_notify.cmd_silence(args, store, sys.stdout)
        except ValueError as exc:
            raise Exit(EXIT_USAGE, str(exc)) from None
        except KeyError:
            raise Exit(EXIT_USAGE, f"no silence with id {args.id}") from None


BUILTIN_RULES = frozenset({SOURCE_DOWN_RULE, NOTIFIER_RULE, TOPUP_UNAVAILABLE_RULE})
"""The rules the daemon brings itself; a silence may name them."""


def check_silence_scope(loaded: LoadedSettings, rule_glob: str, account: str | None) -> None:
    try:
        cli_topups.check_account(loaded.settings, account)
    except ValueError as exc:
        raise Exit(EXIT_USAGE, str(exc)) from None
    names = {rule.name for rule in load_rules(loaded.settings.rules, loaded.config_dir).rules}
    warning = unmatched_warning(rule_glob, names | BUILTIN_RULES)
    if warning is not None:
        print(f"account-watcher: warning: {warning}", file=sys.stderr)
