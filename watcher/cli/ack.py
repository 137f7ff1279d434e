"""`ack RULE [--account A] [--group G] --reason R` (DESIGN §5, §7).

Acknowledges the current firing episode of every matching alert: with neither
`--account` nor `--group`, every account's (and group's) firing alert of RULE, each
listed, since an on-call person who acks a rule means the incident, wherever it fires.
Who is `$SUDO_USER`, else `$USER`. The ack is written to the state; the daemon sees it at
its next cycle and sends `[ACK] RULE — ACCOUNT: WHO: REASON` to the routes that got the
alert. Exit 0; 1 when no such alert is firing; 2 for an empty reason.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from watcher.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    Exit,
    has_state,
    open_state,
    settings,
    state_target,
)
from watcher.cli.notify import now_utc, user
from watcher.core.incident import matching_firing
from watcher.core.render import when
from watcher.state.acks import Acks


def cmd_ack(path: Path, args: argparse.Namespace, out: TextIO) -> int:
    """Acknowledge the matching firing alerts; see the module docstring."""
    if not args.reason.strip():
        raise Exit(EXIT_USAGE, "an ack needs a reason (--reason)")
    loaded = settings(path)
    scope = _scope(args.rule, args.account, args.group)
    target = state_target(loaded)
    if not has_state(target):
        raise Exit(EXIT_INVALID, f"no firing alert {scope}: the daemon has not run yet")
    now, who = now_utc(), user()
    with open_state(loaded, target) as store:
        firing = matching_firing(store.load_alerts().values(), args.rule, args.account, args.group)
        if not firing:
            raise Exit(EXIT_INVALID, f"no firing alert {scope} (see account-watcher status)")
        acks = Acks(store)
        for state in firing:
            ack = acks.add(
                state,
                by=who,
                reason=args.reason,
                now=now,
                expires=loaded.settings.notify.ack_expires,
            )
            print(
                f"acked {state.key} as {who} until {when(ack.expires_at)}: {ack.reason}", file=out
            )
    print("the daemon tells the routes at its next cycle", file=out)
    return EXIT_OK


def _scope(rule: str, account: str | None, group: str | None) -> str:
    where = [f"on account {account}"] if account else []
    where += [f"in group {group}"] if group else []
    return " ".join([f"of rule {rule}", *where])
