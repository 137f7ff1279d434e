"""`status --json`: the state as one JSON document of a stable shape (README, "status
--json"). Keys are only ever added; `version` changes if one is removed or renamed.

Times are ISO 8601 UTC (`2026-12-01T16:20:00Z`), money decimal strings, absent things
`null`. Alerts carry the ack in force (`ack`), when the escalation route was first told
(`escalated_at`), the routes told in the episode (`notified_routes`, null for a state
written before they were recorded) and the silence that holds them (`silenced_by`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from watcher.cli.accounts import AccountView, account_json, iso
from watcher.core.model import AlertState
from watcher.core.silences import Silence, silenced_by
from watcher.state.alerts import CycleInfo, SourceHealth

VERSION = 1


def status_document(
    *,
    where: Path | str,
    now: datetime,
    cycle: CycleInfo | None,
    accounts: Sequence[AccountView],
    sources: Sequence[SourceHealth],
    alerts: Iterable[AlertState],
    silences: Sequence[Silence],
    undelivered: int,
) -> dict[str, Any]:
    """The whole `status --json` document."""
    return {
        "version": VERSION,
        "state": str(where),
        "now": iso(now),
        "last_cycle": None
        if cycle is None
        else {
            "at": iso(cycle.at),
            "duration_s": round(cycle.duration_s, 3),
            "errors": cycle.errors,
        },
        "accounts": [account_json(a) for a in accounts],
        "sources": [_source(h) for h in sources],
        "alerts": [
            _alert(s, silenced_by(s.key, silences, now))
            for s in sorted(alerts, key=lambda s: s.key)
        ],
        "silences": [_silence(s) for s in silences],
        "undelivered": undelivered,
    }


def _source(h: SourceHealth) -> dict[str, Any]:
    return {
        "account": h.account,
        "source": h.source,
        "last_attempt": iso(h.last_attempt),
        "last_ok": iso(h.last_ok),
        "failing_since": iso(h.failing_since),
        "error": h.last_error,
        "auth": h.auth,
    }


def _alert(s: AlertState, silence: Silence | None) -> dict[str, Any]:
    ack = s.ack
    return {
        "rule": s.key.rule,
        "account": s.key.account,
        "group": s.key.group,
        "phase": s.phase.value,
        "severity": s.severity.label,
        "value": s.value,
        "threshold": s.threshold,
        "active_since": iso(s.active_since),
        "fired_at": iso(s.fired_at),
        "last_notified_at": iso(s.last_notified_at),
        "notified_routes": None if s.notified_routes is None else list(s.notified_routes),
        "escalated_at": iso(s.escalated_at),
        "ack": None
        if ack is None
        else {
            "by": ack.by,
            "reason": ack.reason,
            "at": iso(ack.at),
            "expires_at": iso(ack.expires_at),
        },
        "silenced_by": None if silence is None else silence.id,
    }


def _silence(s: Silence) -> dict[str, Any]:
    return {
        "id": s.id,
        "rule_glob": s.rule_glob,
        "account": s.account,
        "reason": s.reason,
        "created_by": s.created_by,
        "created_at": iso(s.created_at),
        "expires_at": iso(s.expires_at),
    }
