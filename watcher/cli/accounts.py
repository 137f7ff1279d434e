"""`accounts`: every watched account with its provider, currency, balance and last poll
(DESIGN §7); the same view is part of `status` and `status --json`.

An account is listed when the config names it or the state holds samples or source
health for it (an account discovered by the daemon, or one removed from the config
since: `configured` is false, its provider unknown).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from watcher.cli.common import EXIT_OK, has_state, open_state, settings, state_target
from watcher.config.settings import LoadedSettings
from watcher.core.model import Balance
from watcher.state.alerts import SourceHealth
from watcher.state.store import Store


@dataclass(frozen=True, slots=True)
class AccountView:
    """One account as `accounts` shows it; `last_poll` is the newest attempt of any of
    its sources, `failing` the sources failing now."""

    name: str
    provider: str | None
    configured: bool
    currency: str | None
    balance: Balance | None
    balance_at: datetime | None
    last_poll: datetime | None
    last_ok: datetime | None
    failing: tuple[SourceHealth, ...]


def account_views(loaded: LoadedSettings, store: Store) -> list[AccountView]:
    """Every account of the config (in its order), then those only the state knows."""
    configured = {a.name: a for a in loaded.settings.accounts}
    balances = store.latest_balances()
    health = store.source_health()
    names = list(configured) + sorted(
        ({h.account for h in health} | set(balances)) - set(configured)
    )
    views = []
    for name in names:
        account = configured.get(name)
        sample = balances.get(name)
        mine = [h for h in health if h.account == name]
        views.append(
            AccountView(
                name=name,
                provider=account.provider if account else None,
                configured=account is not None,
                currency=sample[1].currency if sample else getattr(account, "currency", None),
                balance=sample[1] if sample else None,
                balance_at=sample[0] if sample else None,
                last_poll=max((h.last_attempt for h in mine), default=None),
                last_ok=max((h.last_ok for h in mine if h.last_ok), default=None),
                failing=tuple(h for h in mine if h.failing_since is not None),
            )
        )
    return views


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def account_json(view: AccountView) -> dict[str, Any]:
    """The documented JSON shape of one account (README, "accounts and status --json")."""
    balance = view.balance
    return {
        "name": view.name,
        "provider": view.provider,
        "configured": view.configured,
        "currency": view.currency,
        "balance": None
        if balance is None
        else {
            "balance": str(balance.balance),
            "available_credit": str(balance.available_credit),
            "credit_limit": str(balance.credit_limit),
            "pending": str(balance.pending),
            "at": iso(view.balance_at),
        },
        "last_poll": iso(view.last_poll),
        "last_ok": iso(view.last_ok),
        "failing": [
            {"source": h.source, "since": iso(h.failing_since), "error": h.last_error}
            for h in view.failing
        ],
    }


def account_lines(views: Sequence[AccountView]) -> list[str]:
    """One line per account, for `accounts` and `status`."""
    if not views:
        return ["accounts: none"]
    lines = ["accounts:"]
    for v in views:
        provider = v.provider or "not configured"
        money = (
            f"{v.balance.available_credit} {v.balance.currency} available "
            f"(balance {v.balance.balance}, at {v.balance_at:%Y-%m-%d %H:%M:%S} UTC)"
            if v.balance is not None and v.balance_at is not None
            else "no balance yet"
        )
        poll = f"last poll {v.last_poll:%Y-%m-%d %H:%M:%S} UTC" if v.last_poll else "never polled"
        failing = f"; FAILING: {', '.join(h.source for h in v.failing)}" if v.failing else ""
        lines.append(f"  {v.name} ({provider}): {money}; {poll}{failing}")
    return lines


def cmd_accounts(path: Path, out: TextIO, *, as_json: bool) -> int:
    """Every watched account, as lines or (`--json`) a JSON list."""
    loaded = settings(path)
    target = state_target(loaded)
    if not has_state(target):
        views = [
            AccountView(
                a.name, a.provider, True, getattr(a, "currency", None), None, None, None, None, ()
            )
            for a in loaded.settings.accounts
        ]
    else:
        with open_state(loaded, target) as store:
            views = account_views(loaded, store)
    if as_json:
        print(json.dumps([account_json(v) for v in views], indent=2), file=out)
    else:
        print("\n".join(account_lines(views)), file=out)
    return EXIT_OK
