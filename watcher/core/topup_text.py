"""The top-up policy's messages, pure: refusal reasons and ledger entries as `Message`s.

`refusal_text` is the reason recorded (and notified) for a refused top-up;
`render_entry` the notification of a ledger entry's outcome (DESIGN section 5 titles);
`render_state_lost` / `render_fresh_state` the notices of a lost or fresh state.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from watcher.core.durations import format_duration
from watcher.core.holds import describe
from watcher.core.ledger_types import Entry, EntryState, Guard, Pause, VerifyState
from watcher.core.lifecycle import Reason
from watcher.core.model import Severity
from watcher.core.render import Message, when
from watcher.core.rules import money
from watcher.core.topup import Caps, Refusal, Refuse, Usage


def caps_text(caps: Caps, used: Usage, currency: str) -> str:
    """`100.00 of 300.00 USD in the last 24 h; 100.00 of 1,000.00 USD in the last 30 days`."""
    text = f"{money(used.day)} of {money(caps.max_per_day, currency)} in the last 24 h"
    if caps.max_per_month is not None:
        text += (
            f"; {money(used.month)} of {money(caps.max_per_month, currency)} in the last 30 days"
        )
    return text


def refusal_text(
    refuse: Refuse,
    caps: Caps,
    currency: str,
    pause: Pause | None = None,
    guard: Guard | None = None,
) -> str:
    """The reason recorded and notified for a refusal, starting with its kind."""
    pause = pause or (guard.pause if guard else None)
    match refuse.why:
        case Refusal.HELD:
            return held_text(guard)
        case Refusal.STATE_LOST:
            found = f" ({guard.lost.found})" if guard and guard.lost else ""
            return (
                f"state-lost: the state database lost top-ups that the ledger journal "
                f"records{found}; check the provider, settle what is in doubt, then "
                "account-watcher topups resume"
            )
        case Refusal.FRESH_STATE:
            nxt = f" until {when(refuse.next_allowed)}" if refuse.next_allowed else ""
            return (
                f"fresh-state: the state was created fresh, so top-ups wait "
                f"{format_duration(caps.min_interval)}{nxt} (account-watcher topups resume "
                "lifts the wait)"
            )
        case Refusal.PAUSED:
            who = (
                f" by {pause.paused_by} at {when(pause.paused_at)}: {pause.reason}" if pause else ""
            )
            return f"paused: top-ups are paused{who} (account-watcher topups resume)"
        case Refusal.MIN_INTERVAL:
            last = refuse.usage.last_post
            after = f" at {when(last)}" if last else ""
            nxt = f"; next allowed at {when(refuse.next_allowed)}" if refuse.next_allowed else ""
            return (
                f"min_interval: the last top-up was sent{after}, less than "
                f"{format_duration(caps.min_interval)} ago{nxt}"
            )
        case Refusal.MAX_PER_DAY:
            return (
                f"max_per_day: {money(refuse.usage.day)} of {money(caps.max_per_day, currency)} "
                f"already used in the last 24 h; {money(caps.amount)} more would exceed it"
            )
        case Refusal.MAX_PER_MONTH:
            cap = caps.max_per_month if caps.max_per_month is not None else Decimal(0)
            return (
                f"max_per_month: {money(refuse.usage.month)} of {money(cap, currency)} already "
                f"used in the last 30 days; {money(caps.amount)} more would exceed it"
            )
    raise AssertionError(refuse.why)  # pragma: no cover


def held_text(guard: Guard | None) -> str:
    """`held: top-ups of main are on hold: held by rule R since T until U: <event>; …`."""
    hold = guard.hold if guard is not None else None
    if guard is None or hold is None:
        return "held: top-ups of this account are on hold (account-watcher topups release)"
    return (
        f"held: top-ups of {hold.account} are on hold (fraud hold): "
        f"{describe(hold, guard.hold_after)}; "
        f"check what happened, then account-watcher topups release --account {hold.account} "
        '--reason "..."'
    )


def _transaction(entry: Entry) -> str:
    return "" if entry.transaction_id is None else f" (transaction {entry.transaction_id})"


def _why_line(entry: Entry) -> str:
    return f"Why: {entry.reason}"


PLACES = {
    "telnyx": ("the Telnyx portal (Billing)", "the Telnyx portal", "the stored payment method"),
    "vonage": (
        "the Vonage dashboard (Billing & payments)",
        "the Vonage dashboard",
        "the auto-reload payment",
    ),
}
"""Per provider: where a human checks payments (in full and short), and what a top-up
pays with."""


def render_entry(
    entry: Entry, caps: Caps | None, used: Usage, *, provider: str = "telnyx"
) -> Message:
    """The notification for a ledger entry's outcome. Pure.

    In: the entry, the account's caps (None when the account is gone from the config),
    the caps used now, the account's provider (names the place to check). Out: a
    `Message` titled per DESIGN §5, e.g. `[INFO] top-up paid 100.00 USD — main`; the body
    gives the amount, the caps used, the transaction id and the API's error where there
    is one, and what to do.
    """
    portal, site, method = PLACES.get(provider, PLACES["telnyx"])
    amount = money(entry.amount, entry.currency)
    lines: list[str]
    if entry.state is EntryState.SUCCEEDED and entry.verify_state is VerifyState.MISSING:
        severity, title = Severity.CRITICAL, f"top-up not reflected in balance {amount}"
        lines = [
            f"Top-up #{entry.id} of {amount} was paid{_transaction(entry)} at "
            f"{when(entry.finished_at or entry.created_at)}, but the balance did not rise by "
            f"about that amount since ({entry.error or 'no balance read since'}).",
            f"Check the transaction in {portal} before anything else.",
        ]
    elif entry.state is EntryState.SUCCEEDED:
        severity, title = Severity.INFO, f"top-up paid {amount}"
        lines = [f"Paid {amount} from {method}.", _why_line(entry)]
        if entry.transaction_id is not None:  # Vonage gives none
            lines.append(f"Transaction id: {entry.transaction_id}")
    elif entry.state is EntryState.UNKNOWN:
        severity, title = Severity.CRITICAL, f"top-up outcome unknown {amount}"
        lines = [
            f"A top-up of {amount} was sent but its outcome is unknown: {entry.error}.",
            "It may or may not have been charged. It counts toward the caps and is never "
            "retried automatically.",
            _why_line(entry),
            f"Check the transactions in {portal}, then record what happened: "
            f'account-watcher topups settle {entry.id} --as succeeded|failed --reason "..."',
        ]
    elif entry.state is EntryState.FAILED:
        severity, title = Severity.CRITICAL, f"top-up failed {amount}"
        lines = [
            f"The top-up of {amount} was refused by the API; no money was moved.",
            f"API error: {entry.error}",
            _why_line(entry),
            f"Credit is still low: check {method} in {site}.",
        ]
    elif entry.state is EntryState.DRY_RUN:
        severity, title = Severity.INFO, f"top-up dry run: would have paid {amount}"
        lines = [
            f"Dry run: would have paid {amount} from {method}; nothing was "
            "sent. Set accounts[].topup.enabled: true to pay for real.",
            _why_line(entry),
        ]
    elif entry.state is EntryState.REFUSED:
        kind = entry.reason.split(":", 1)[0]
        severity, title = Severity.WARNING, f"top-up refused ({kind}) {amount}"
        lines = [
            f"A top-up of {amount} is due (rule {entry.rule}) but was not made: {entry.reason}.",
            "This is said once per firing episode; the daemon tries again while the rule "
            "stays critical.",
        ]
    else:  # SENDING is never announced
        severity, title = Severity.CRITICAL, f"top-up in flight {amount}"
        lines = [f"A top-up of {amount} is being sent."]
    if caps is not None:
        lines.append(f"Caps used: {caps_text(caps, used, entry.currency)}.")
    lines.append(
        f"Ledger entry #{entry.id} ({when(entry.created_at)}); see `account-watcher topups`."
    )
    return Message(
        title=f"[{severity.name}] {title} — {entry.account}",
        body="\n".join(lines),
        severity=severity,
        rule=entry.rule,
        account=entry.account,
        reason=Reason.EVENTS,
        urgent=True,  # money: delivered even through a route's `mute`
    )


def render_state_lost(found: str, path: str) -> Message:
    """The critical alert of a lost state (DESIGN §6): what was found, how to recover."""
    body = [
        f"The state database {path} lost top-up entries: {found}.",
        "Top-ups are refused (reason state-lost) so that nothing is paid twice; alerts keep "
        "working.",
        "To recover: `account-watcher topups` lists the ledger with the restored entries; "
        "check the provider's portal for top-ups of the last 24 h; settle each entry in "
        'doubt with `account-watcher topups settle ID --as succeeded|failed --reason "..."`; '
        "then allow top-ups again with `account-watcher topups resume`.",
    ]
    return _state_message(Severity.CRITICAL, "state lost: top-ups refused", body)


def render_fresh_state(since: datetime, path: str) -> Message:
    """The warning of a state created fresh: check the provider, top-ups wait."""
    body = [
        f"state created fresh at {path} ({when(since)}); if this host had state before, "
        "check the provider for top-ups of the last 24 h.",
        "Top-ups wait one min_interval from then, since this state cannot know about "
        "earlier ones; `account-watcher topups resume` allows them now.",
    ]
    return _state_message(Severity.WARNING, f"state created fresh at {path}", body)


def _state_message(severity: Severity, title: str, body: list[str]) -> Message:
    return Message(
        title=f"[{severity.name}] {title}",
        body="\n".join(body),
        severity=severity,
        rule="watcher-state",
        account="",
        reason=Reason.EVENTS,
        urgent=True,
    )
