"""The command line's grammar (DESIGN §7): every command and its options, and nothing
else. The commands' modules load in `watcher.cli.main._dispatch`, once one is chosen:
parsing imports no config, state, service or notification module (tests/test_lazy_cli.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="account-watcher",
        description="Keeps a Telnyx account healthy: polls, evaluates rules, alerts.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="config file (default: $WATCHER_CONFIG, else /etc/account-watcher/config.yaml)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="the daemon loop (systemd runs this)")
    once = sub.add_parser("once", help="one poll-evaluate-act cycle, then a summary")
    once.add_argument("--dry-run", action="store_true", help="never pay (top-ups)")
    sub.add_parser("check", help="validate config and every rule file")
    _reading(sub)
    rule_test = sub.add_parser("test", help="run rule unit tests (like promtool test rules)")
    rule_test.add_argument("files", nargs="+", type=Path, metavar="FILE", help="test files")
    demo = sub.add_parser("demo", help="run against a built-in simulated account")
    for register in (_silence, _notify_test, _topups, _ack, _digest, _state):
        register(sub)
    demo.add_argument("--speed", type=float, default=1.0, help=argparse.SUPPRESS)
    demo.add_argument("--web", action="store_true", help="also serve the status page")
    return parser


def _reading(sub: Subparsers) -> None:
    """`status`, `accounts`, `schema`."""
    status = sub.add_parser("status", help="alerts, accounts, last poll per source, last cycle")
    status.add_argument("--json", action="store_true", help="as JSON (shape: README)")
    accounts = sub.add_parser("accounts", help="every watched account: balance, last poll")
    accounts.add_argument("--json", action="store_true", help="as JSON (shape: README)")
    schema = sub.add_parser("schema", help="print the JSON Schema of rule files (for editors)")
    schema.add_argument("--status", action="store_true", help="of /api/v1/status instead")


def _silence(sub: Subparsers) -> None:
    silence = sub.add_parser("silence", help="manage silences (add, list, expire)")
    actions = silence.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="silence alerts of rules matching a glob")
    add.add_argument("rule_glob", metavar="RULE_GLOB", help="rule name or glob, e.g. 'low-*'")
    add.add_argument("--account", help="only this account (default: all)")
    add.add_argument("--duration", required=True, help="how long, e.g. 2h, 30m, 1d")
    add.add_argument("--reason", required=True, help="why (shown in status and logs)")
    actions.add_parser("list", help="active and recently ended silences")
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id", type=int, metavar="ID")


def _notify_test(sub: Subparsers) -> None:
    test = sub.add_parser("notify-test", help="send a test message to every notification URL")
    test.add_argument("--route", help="only this route")


def _topups(sub: Subparsers) -> None:
    """`topups` (with `settle`, `pause`, `resume`, `hold`, `release`)."""
    topups = sub.add_parser("topups", help="the top-up ledger; settle, pause, resume")
    topups.add_argument("--account", help="only this account")
    topups.add_argument("--since", default="7d", help="how far back to list (default 7d)")
    actions = topups.add_subparsers(dest="topups_action", metavar="ACTION")
    settle = actions.add_parser("settle", help="record what happened to an unknown top-up")
    settle.add_argument("id", type=int, metavar="ID")
    settle.add_argument("--as", dest="settle_as", choices=["succeeded", "failed"], required=True)
    settle.add_argument("--reason", required=True, help="what you checked, e.g. the portal")
    pause = actions.add_parser("pause", help="stop every top-up until resumed (kill switch)")
    pause.add_argument("--reason", required=True, help="why (shown in status and alerts)")
    actions.add_parser("resume", help="allow top-ups again")
    hold = actions.add_parser("hold", help="hold an account's top-ups until released")
    hold.add_argument("--account", dest="hold_account", required=True, help="the account")
    hold.add_argument("--reason", required=True, help="why (shown in status and alerts)")
    release = actions.add_parser("release", help="lift the fraud hold of an account")
    release.add_argument("--account", dest="hold_account", required=True, help="the account")
    release.add_argument("--reason", required=True, help="what you checked")


def _ack(sub: Subparsers) -> None:
    ack = sub.add_parser("ack", help="acknowledge a firing alert (stops repeats and escalation)")
    ack.add_argument("rule", metavar="RULE", help="the rule's name")
    ack.add_argument("--account", help="only this account (default: every account)")
    ack.add_argument("--group", help="only this group (default: every group)")
    ack.add_argument("--reason", required=True, help="why, e.g. 'on it, topping up by hand'")


def _digest(sub: Subparsers) -> None:
    digest = sub.add_parser("digest", help="print (--preview) or send the daily digest now")
    digest.add_argument("--account", help="only this account")
    digest.add_argument("--preview", action="store_true", help="print it; send nothing")


def _state(sub: Subparsers) -> None:
    """`state migrate --to URL`."""
    state = sub.add_parser("state", help="move the state between backends")
    actions = state.add_subparsers(dest="state_action", metavar="ACTION", required=True)
    migrate = actions.add_parser("migrate", help="copy the SQLite state into PostgreSQL")
    migrate.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="postgresql://… or a reference to it: env:NAME, file:PATH, credential:NAME",
    )
