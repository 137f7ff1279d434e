"""Silences: suppress notifications of matching alerts until they expire.

A silenced alert is still evaluated and shown in `status`. When a silence ends while an
alert it covered still fires, the daemon notifies it once ("still firing").
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import AlertKey, AlertState, Phase
from watcher.core.rules import Finding
from watcher.state.store import Store, dt, ts


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    rule_glob: str
    account: str | None
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime

    def matches(self, key: AlertKey) -> bool:
        """The rule name matches the glob, and the account when one is given."""
        if self.account is not None and key.account != self.account:
            return False
        return fnmatch.fnmatchcase(key.rule, self.rule_glob)

    def active(self, now: datetime) -> bool:
        return now < self.expires_at


def silenced_by(key: AlertKey, silences: Iterable[Silence], now: datetime) -> Silence | None:
    """The active silence covering `key` that lasts longest, or None."""
    covering = [s for s in silences if s.active(now) and s.matches(key)]
    return max(covering, key=lambda s: s.expires_at, default=None)


def still_firing(
    alerts: Mapping[AlertKey, AlertState],
    findings: Mapping[AlertKey, Finding],
    ended: Sequence[Silence],
    active: Sequence[Silence],
    now: datetime,
    *,
    notified: Collection[AlertKey] = (),
) -> list[Transition]:
    """The "still firing" repeats owed when silences end. Pure.

    In: the alerts after this cycle's lifecycle step, this cycle's findings, the
    silences that just ended, those still active, `now`, and the keys this cycle
    already notifies. Out: one `REPEAT` transition for each firing alert an ended
    silence covered and no active one covers, carrying this cycle's finding, so it is
    rendered exactly as a repeat that fell due would be; its state is marked notified.
    """
    out = []
    for key, state in sorted(alerts.items()):
        if state.phase is not Phase.FIRING or key in notified:
            continue
        if silenced_by(key, active, now) is not None or not any(s.matches(key) for s in ended):
            continue
        state = dataclasses.replace(state, last_notified_at=now)
        out.append(Transition(Reason.REPEAT, key, state.severity, now, state, findings.get(key)))
    return out


def unmatched_warning(rule_glob: str, rule_names: Collection[str]) -> str | None:
    """A warning when the glob matches none of `rule_names` (the loaded config's rules
    and the built-in ones), else None. Such a silence is still allowed: the rule may be
    about to be added."""
    if any(fnmatch.fnmatchcase(name, rule_glob) for name in rule_names):
        return None
    return (
        f"{rule_glob!r} matches no rule of the loaded config ({', '.join(sorted(rule_names))}); "
        "the silence is kept for rules added later"
    )


_COLUMNS = "id, rule_glob, account, reason, created_by, created_at, expires_at"


def _silence(row: Sequence[Any]) -> Silence:
    return Silence(row[0], row[1], row[2], row[3], row[4], dt(row[5]), dt(row[6]))


class Silences:
    """The silences table of the state database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self,
        rule_glob: str,
        *,
        account: str | None,
        duration: timedelta,
        reason: str,
        created_by: str,
        now: datetime,
    ) -> Silence:
        """Create a silence. Raises ValueError for an empty reason or a duration <= 0."""
        if not reason.strip():
            raise ValueError("a silence needs a reason")
        if duration <= timedelta(0):
            raise ValueError("a silence needs a duration longer than 0s")
        with self.store.transaction():
            self.store.execute(
                "INSERT INTO silences (rule_glob, account, reason, created_by, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (rule_glob, account, reason.strip(), created_by, ts(now), ts(now + duration)),
            )
            new_id = int(self.store.query("SELECT last_insert_rowid()")[0][0])
        return self.get(new_id)

    def get(self, silence_id: int) -> Silence:
        """Raises KeyError for an unknown id."""
        rows = self.store.query(f"SELECT {_COLUMNS} FROM silences WHERE id = ?", (silence_id,))  # noqa: S608
        if not rows:
            raise KeyError(silence_id)
        return _silence(rows[0])

    def all(self) -> list[Silence]:
        rows = self.store.query(f"SELECT {_COLUMNS} FROM silences ORDER BY id")  # noqa: S608
        return [_silence(row) for row in rows]

    def active(self, now: datetime) -> list[Silence]:
        return [s for s in self.all() if s.active(now)]

    def expire(self, silence_id: int, now: datetime) -> Silence:
        """End a silence now (an already ended one keeps its end). Raises KeyError."""
        silence = self.get(silence_id)
        if silence.active(now):
            self.store.execute(
                "UPDATE silences SET expires_at = ? WHERE id = ?", (ts(now), silence_id)
            )
        return self.get(silence_id)

    def ended_unhandled(self, now: datetime) -> list[Silence]:
        """Silences that ended and whose end the daemon has not acted on yet."""
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM silences WHERE ended_handled = 0 AND expires_at <= ?",  # noqa: S608
            (ts(now),),
        )
        return [_silence(row) for row in rows]

    def mark_handled(self, silences: Iterable[Silence]) -> None:
        self.store.executemany(
            "UPDATE silences SET ended_handled = 1 WHERE id = ?", [(s.id,) for s in silences]
        )

    def prune(self, now: datetime, keep: timedelta = timedelta(days=30)) -> int:
        return self.store.execute(
            "DELETE FROM silences WHERE ended_handled = 1 AND expires_at < ?", (ts(now - keep),)
        )
