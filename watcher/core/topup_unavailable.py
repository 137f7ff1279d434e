"""The built-in rule `watcher-topup-unavailable` (DESIGN §6.4), pure: an account whose
last top-up was refused because the provider does not allow top-ups (Vonage: HTTP 401
`not auto-reload enabled`) stays alerted until the provider says it is fixed (Vonage's
balance shows `autoReload: true` again) or a later top-up is made."""

from __future__ import annotations

from collections.abc import Sequence

from watcher.core.ledger_types import POSTED, Entry, EntryState
from watcher.core.model import AccountSnapshot, AlertKey, Severity
from watcher.core.rules import Finding, RuleResult

TOPUP_UNAVAILABLE_RULE = "watcher-topup-unavailable"
AUTO_RELOAD_OFF = "not auto-reload enabled"
"""What a failed top-up's error says when the account does not allow top-ups."""


def unavailable_reason(entries: Sequence[Entry]) -> str | None:
    """Why top-ups cannot be made, from an account's ledger entries (oldest first): the
    error of the last POSTed one when it failed because auto-reload is off, else None."""
    posted = [entry for entry in entries if entry.state in POSTED]
    if not posted or posted[-1].state is not EntryState.FAILED:
        return None
    error = posted[-1].error or ""
    return error if AUTO_RELOAD_OFF in error.lower() else None


def judge_unavailable(snap: AccountSnapshot, reason: str | None) -> RuleResult:
    """Firing (critical) while `reason` is given and the balance does not show auto-reload
    on; not judged without a balance (the alert stays as it is); clear otherwise."""
    if reason is None:
        return RuleResult(TOPUP_UNAVAILABLE_RULE, snap.account, True)
    if snap.balance is None:
        return RuleResult(TOPUP_UNAVAILABLE_RULE, snap.account, False)
    if snap.balance.auto_reload is True:
        return RuleResult(TOPUP_UNAVAILABLE_RULE, snap.account, True)  # fixed
    finding = Finding(
        key=AlertKey(TOPUP_UNAVAILABLE_RULE, snap.account),
        severity=Severity.CRITICAL,
        value="top-ups cannot be made: auto-reload is not enabled on the account",
        threshold=f"the last top-up failed: {reason}; enable auto-reload in the dashboard",
        facts={"error": reason},
    )
    return RuleResult(TOPUP_UNAVAILABLE_RULE, snap.account, True, (finding,))
