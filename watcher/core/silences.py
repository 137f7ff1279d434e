"""Silences, the matching half (pure): which silence covers an alert, what is owed when
one ends.

A silenced alert is still evaluated and shown in `status`. When a silence ends while an
alert it covered still fires, the daemon notifies it once ("still firing"). The
silences themselves are kept by watcher/state/silences.py.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import AlertKey, AlertState, Phase
from watcher.core.rules import Finding


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
