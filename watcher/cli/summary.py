"""What `once` and `status` print of a cycle and of the alerts: plain lines for stdout."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from watcher.core.model import AlertState
from watcher.core.render import count_of

if TYPE_CHECKING:  # `status` prints alerts only: it loads no cycle (nor httpx)
    from watcher.providers.base import Collected
    from watcher.service.cycle import CycleResult


def summarize(result: CycleResult) -> list[str]:
    """Human summary of a cycle for `once` (stdout)."""
    lines = [
        f"cycle at {result.at:%Y-%m-%d %H:%M:%S} UTC: {count_of(result.requests, 'API request')} "
        f"in {result.duration_s:.2f}s"
    ]
    for collected in result.collected:
        lines += account_lines(collected)
    lines += alert_lines(result.alerts.values())
    delivered = sum(1 for d in result.deliveries if d.ok)
    failed = [d for d in result.deliveries if not d.ok]
    lines.append(
        f"notifications: {count_of(len(result.messages), 'new message')}, "
        f"{count_of(delivered, 'delivery', 'deliveries')} ok, "
        f"{len(failed)} failed, {result.backlog} waiting for retry"
    )
    lines += [f"  failed: {d.route} {d.url} ({d.error})" for d in failed]
    return lines


def account_lines(collected: Collected) -> list[str]:
    """One account's sources (ok, catching up, failed) and what was read."""
    snap = collected.snapshot
    parts = [f"{s}: {collected.behind.get(s, 'ok')}" for s in sorted(collected.succeeded)]
    parts += [f"{s}: FAILED ({f.message})" for s, f in sorted(collected.failures.items())]
    lines = [f"  account {snap.account}: " + ("; ".join(parts) or "nothing polled")]
    if snap.balance is not None:
        b = snap.balance
        lines.append(
            f"    balance {b.balance} {b.currency}, available credit {b.available_credit} "
            f"{b.currency}"
        )
    if snap.new_audit_events:
        lines.append(f"    {count_of(len(snap.new_audit_events), 'new audit event')}")
    if snap.webhook_failures:
        failures = count_of(
            len(snap.webhook_failures), "failed webhook delivery", "failed webhook deliveries"
        )
        lines.append(f"    {failures} in the window")
    return lines


def alert_lines(states: Iterable[AlertState]) -> list[str]:
    """One line per alert, for `once` and `status`."""
    items = sorted(states, key=lambda s: s.key)
    if not items:
        return ["alerts: none"]
    lines = ["alerts:"]
    for state in items:
        lines.append(
            f"  {state.phase.value.upper():8} {state.severity.label:8} {state.key}: "
            f"{state.value} ({state.threshold})"
        )
        if state.ack is not None:
            ack = state.ack
            lines.append(
                f"    ACKED by {ack.by} at {ack.at:%Y-%m-%d %H:%M} UTC until "
                f"{ack.expires_at:%Y-%m-%d %H:%M} UTC: {ack.reason}"
            )
        if state.escalated_at is not None:
            lines.append(f"    ESCALATED at {state.escalated_at:%Y-%m-%d %H:%M} UTC")
    return lines
