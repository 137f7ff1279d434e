"""Vonage top-ups add a fixed amount that Vonage chooses (the payment that enabled
auto-reload); the configured `amount` is what the ledger and caps count. When the balance
rose by something else, the configuration is wrong: `amount_differs` says when, and
`render_amount_differs` is the alert (DESIGN §6.4). Pure."""

from __future__ import annotations

from decimal import Decimal

from watcher.core.ledger_types import Entry
from watcher.core.lifecycle import Reason
from watcher.core.model import Severity
from watcher.core.render import Message, when
from watcher.core.rules import money

MISMATCH_SHARE = Decimal("0.10")
"""A rise that differs from the configured amount by more than this share of it is a
mismatch (50.00 configured: a rise below 45.00 or above 55.00)."""


def amount_differs(configured: Decimal, rose: Decimal) -> bool:
    """Whether a balance rise of `rose` after a top-up is far from the `configured`
    amount (more than `MISMATCH_SHARE` of it either way)."""
    return abs(rose - configured) > configured * MISMATCH_SHARE


def render_amount_differs(entry: Entry, rose: Decimal) -> Message:
    """`[WARNING] top-up amount differs from configured 50.00 EUR — eu`, with what the
    balance did and what to change."""
    configured = money(entry.amount, entry.currency)
    seen = money(rose.normalize(), entry.currency)  # 100.00000000 - trailing zeros: 100.00
    body = "\n".join(
        [
            f"Top-up #{entry.id} ({when(entry.finished_at or entry.created_at)}) is counted "
            f"as {configured} (accounts[].topup.amount), but the balance rose by {seen}.",
            "Vonage adds the amount of the payment that enabled auto-reload. Check it in the "
            "Vonage dashboard and set accounts[].topup.amount (and the caps) to match.",
            f"Ledger entry #{entry.id}; see `account-watcher topups`.",
        ]
    )
    return Message(
        title=f"[WARNING] top-up amount differs from configured {configured} — {entry.account}",
        body=body,
        severity=Severity.WARNING,
        rule=entry.rule,
        account=entry.account,
        reason=Reason.EVENTS,
        urgent=True,  # money: delivered even through a route's `mute`
    )
