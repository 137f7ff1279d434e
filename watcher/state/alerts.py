"""How things stand: alert states, source health and the last poll cycle.

Mixed into `Store` (watcher/state/store.py); every write runs in `transaction()`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.core.model import AlertKey, AlertState, Phase, Severity
from watcher.state.db import Database, StoreError, dt, dt_or_none, ts, ts_or_none


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """How one source of one account fared; `failing_since` is None while it works."""

    account: str
    source: str
    last_attempt: datetime
    last_ok: datetime | None
    failing_since: datetime | None
    last_error: str | None
    auth: bool


@dataclass(frozen=True, slots=True)
class CycleInfo:
    """The last finished poll cycle."""

    at: datetime
    duration_s: float
    errors: int


class AlertTables(Database):
    """The `alerts`, `source_health` and `last_cycle` tables."""

    def load_alerts(self) -> dict[AlertKey, AlertState]:
        """Every persisted alert state, by key (ordered by key).

        Raises: StoreError when a row holds an unknown phase or severity.
        """
        rows = self._query(
            "SELECT rule, account, alert_group, phase, severity, active_since, fired_at, "
            "last_notified_at, notified_severity, value, threshold, clear_since, "
            "notified_routes, escalated_at FROM alerts ORDER BY rule, account, alert_group"
        )
        states = (self._alert_from_row(row) for row in rows)
        return {state.key: state for state in states}

    def _alert_from_row(self, row: Sequence[Any]) -> AlertState:
        rule, account, group, phase, severity, active, fired, notified, notified_sev = row[:9]
        try:
            return AlertState(
                key=AlertKey(rule=rule, account=account, group=group),
                phase=Phase(phase),
                severity=Severity[severity],
                active_since=dt(active),
                fired_at=dt_or_none(fired),
                last_notified_at=dt_or_none(notified),
                notified_severity=None if notified_sev is None else Severity[notified_sev],
                value=row[9],
                threshold=row[10],
                clear_since=dt_or_none(row[11]),
                notified_routes=None if row[12] is None else tuple(json.loads(row[12])),
                escalated_at=dt_or_none(row[13]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise StoreError(
                f"state database {self.where} holds an unreadable alert state for "
                f"{rule}/{account}: {exc}"
            ) from exc

    def save_alerts(self, states: Mapping[AlertKey, AlertState]) -> None:
        """Replace the whole set of alert states (keys absent from `states` are deleted).
        An attached `ack` is not saved: acks live in their own table (watcher/state/acks.py)."""
        rows = [_alert_row(state) for state in states.values()]
        with self.transaction():
            self._run("DELETE FROM alerts")
            self.executemany(
                "INSERT INTO alerts (rule, account, alert_group, phase, severity, "
                "active_since, fired_at, last_notified_at, notified_severity, value, "
                "threshold, clear_since, notified_routes, escalated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    # -- source health -------------------------------------------------------------

    def record_source_result(
        self, account: str, source: str, now: datetime, error: str | None, *, auth: bool = False
    ) -> None:
        """Record one attempt to read `source` of `account` at `now`.

        In: `error` None for a success; otherwise the failure message, with `auth` set
        when the API rejected the key. A failure keeps an earlier `failing_since`.
        """
        self.record_source_result_many([(account, source, error, auth)], now)

    def record_source_result_many(
        self, rows: Iterable[tuple[str, str, str | None, bool]], now: datetime
    ) -> None:
        """`record_source_result` for each (account, source, error, auth), one (account,
        source) once: the successes in one batched statement, the failures in another."""
        at = ts(now)
        ok: list[tuple[str, str, str, str]] = []
        failed: list[tuple[str, str, str, str, str, int]] = []
        for account, source, error, auth in rows:
            if error is None:
                ok.append((account, str(source), at, at))
            else:
                failed.append((account, str(source), at, at, error, int(auth)))
        self.execute_batches((_SOURCE_OK, ok), (_SOURCE_FAILED, failed))

    def source_health(self) -> list[SourceHealth]:
        """Health of every source ever attempted, ordered by account and source."""
        rows = self._query(
            "SELECT account, source, last_attempt, last_ok, failing_since, last_error, auth "
            "FROM source_health ORDER BY account, source"
        )
        return [
            SourceHealth(
                account=account,
                source=source,
                last_attempt=dt(attempt),
                last_ok=dt_or_none(ok),
                failing_since=dt_or_none(failing),
                last_error=last_error,
                auth=bool(auth),
            )
            for account, source, attempt, ok, failing, last_error, auth in rows
        ]

    def failing_since(self) -> dict[tuple[str, str], datetime]:
        """Since when each failing source fails, by (account, source): what the cycle
        needs of the health every cycle, without converting the rows of every source
        that works (`source_health()` of 3,000 sources: ~18 ms; this: ~0.2 ms)."""
        rows = self._query(
            "SELECT account, source, failing_since FROM source_health "
            "WHERE failing_since IS NOT NULL"
        )
        return {(account, source): dt(since) for account, source, since in rows}

    # -- cycles --------------------------------------------------------------------

    def record_cycle(self, now: datetime, *, duration_s: float, errors: int) -> None:
        """Remember the cycle that started at `now` (only the last one is kept)."""
        self.execute(
            "INSERT INTO last_cycle (id, at, duration_s, errors) VALUES (1, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET at = excluded.at, "
            "duration_s = excluded.duration_s, errors = excluded.errors",
            (ts(now), float(duration_s), int(errors)),
        )

    def last_cycle(self) -> CycleInfo | None:
        """The last recorded cycle, or None before the first one."""
        rows = self._query("SELECT at, duration_s, errors FROM last_cycle WHERE id = 1")
        if not rows:
            return None
        at, duration_s, errors = rows[0]
        return CycleInfo(at=dt(at), duration_s=duration_s, errors=errors)


_SOURCE_OK = (
    "INSERT INTO source_health (account, source, last_attempt, last_ok, "
    "failing_since, last_error, auth) VALUES (?, ?, ?, ?, NULL, NULL, 0) "
    "ON CONFLICT (account, source) DO UPDATE SET last_attempt = excluded.last_attempt, "
    "last_ok = excluded.last_ok, failing_since = NULL, last_error = NULL, auth = 0"
)
_SOURCE_FAILED = (
    "INSERT INTO source_health (account, source, last_attempt, last_ok, "
    "failing_since, last_error, auth) VALUES (?, ?, ?, NULL, ?, ?, ?) "
    "ON CONFLICT (account, source) DO UPDATE SET last_attempt = excluded.last_attempt, "
    "failing_since = COALESCE(source_health.failing_since, excluded.failing_since), "
    "last_error = excluded.last_error, auth = excluded.auth"
)


def _alert_row(state: AlertState) -> tuple[Any, ...]:
    notified = state.notified_severity
    return (
        state.key.rule,
        state.key.account,
        state.key.group,
        state.phase.value,
        state.severity.name,
        ts(state.active_since),
        ts_or_none(state.fired_at),
        ts_or_none(state.last_notified_at),
        None if notified is None else notified.name,
        state.value,
        state.threshold,
        ts_or_none(state.clear_since),
        None if state.notified_routes is None else json.dumps(list(state.notified_routes)),
        ts_or_none(state.escalated_at),
    )
