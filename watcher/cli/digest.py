"""`digest [--account A] [--preview]`: the daily digest now (DESIGN §7, §12).

`--preview` prints it to stdout and never sends or records anything. Without it, it is
sent now to every URL of `notify.digest.route` (else `notify.default_route`), one line
per message and URL as `notify-test` reports them; the day is NOT marked as sent, so the
daemon's scheduled digest still goes out. Exit 0, 1 when a URL failed, 2 for an unknown
`--account` or no route.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from watcher.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    Exit,
    has_state,
    open_state,
    settings,
    state_target,
)
from watcher.config.ruleload import load_rules
from watcher.config.secrets import SecretError
from watcher.config.settings import LoadedSettings, resolve_route_secrets
from watcher.core.digest import WINDOW
from watcher.core.render import Message
from watcher.notify.delivery import NotifyError
from watcher.notify.digest import account_names, build, kinds_of
from watcher.service import logs
from watcher.service.wiring import Runtime, build_notifier, register_secrets
from watcher.state.store import describe_target


def cmd_digest(path: Path, args: argparse.Namespace, out: TextIO) -> int:
    """The digest at this moment, printed or sent (see the module docstring)."""
    loaded = settings(path)
    names = [account.name for account in loaded.settings.accounts]
    target = state_target(loaded)
    exists = has_state(target)
    if args.account is not None and args.account not in names and not exists:
        raise _unknown(args.account, names)
    if not exists:  # like `status`: nothing to summarise, and nothing is created
        print(f"no state yet at {describe_target(target)}: the daemon has not run", file=out)
        return EXIT_OK
    now = datetime.now(UTC)
    messages = _messages(loaded, now, args.account)
    if args.preview:
        out.write(preview_text(messages))
        return EXIT_OK
    return asyncio.run(_send(loaded, messages, out))


def preview_text(messages: Sequence[Message]) -> str:
    """Messages as printed by `--preview`: title, body, a blank line between."""
    return "\n\n".join(f"{m.title}\n{m.body}" for m in messages) + "\n"


def _messages(loaded: LoadedSettings, now: datetime, account: str | None) -> list[Message]:
    rules = load_rules(loaded.settings.rules, loaded.config_dir).rules
    kinds = kinds_of(rules)
    with open_state(loaded) as store:
        if account is not None:
            known = account_names(store, loaded.settings, now - WINDOW)
            if account not in known:
                raise _unknown(account, known)
        return build(store, loaded.settings, kinds, now, only=account)


def _unknown(account: str, known: Sequence[str]) -> Exit:
    return Exit(EXIT_USAGE, f"no account {account!r} (accounts: {', '.join(known)})")


async def _send(loaded: LoadedSettings, messages: Sequence[Message], out: TextIO) -> int:
    notify = loaded.settings.notify
    route = notify.digest.route if notify.digest is not None else notify.default_route
    if route is None:
        raise Exit(EXIT_USAGE, "no route for the digest: set notify.digest.route")
    try:
        secrets = resolve_route_secrets(
            loaded.settings, environ=os.environ, config_dir=loaded.config_dir
        )
        register_secrets(secrets)
        notifier = build_notifier(Runtime(loaded, [], secrets))
    except (SecretError, NotifyError) as exc:
        raise Exit(EXIT_USAGE, str(exc)) from None
    targets = notifier.targets(route)
    sends = [(m, t) for m in messages for t in targets]
    results = await asyncio.gather(*(notifier.deliver(m, t.route, t.url_id) for m, t in sends))
    for (message, target), result in zip(sends, results, strict=True):
        verdict = "delivered" if result.ok else f"FAILED: {logs.scrub(result.error)}"
        print(f"{message.title}: {target.route}: {target.masked}: {verdict}", file=out)
    failed = sum(1 for r in results if not r.ok)
    print(f"{len(results) - failed} delivered, {failed} failed", file=out)
    return 1 if failed else EXIT_OK
