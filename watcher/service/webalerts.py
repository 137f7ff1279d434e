"""The alert half of the status page's view: active alerts with the word that says
where each stands, silences and mute windows (watcher/service/webmodel.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from watcher.config.settings import Settings
from watcher.core.model import AlertState
from watcher.core.mute import is_muted, next_opening
from watcher.core.rulefile import Rule
from watcher.core.silences import Silence, silenced_by
from watcher.service.webmodel import AlertStatus, AlertView, MuteWindowView, SilenceView
from watcher.state.acks import alerts_now
from watcher.state.silences import Silences
from watcher.state.store import Store

UPCOMING = timedelta(days=7)  # mute windows opening within this are listed


def alerts(
    store: Store, settings: Settings, rules: Sequence[Rule], now: datetime
) -> tuple[AlertView, ...]:
    """Every pending or firing alert, most severe first."""
    active = Silences(store).active(now)
    by_name = {rule.name: rule for rule in rules}
    views = [
        _alert(state, silenced_by(state.key, active, now), _muted(state, by_name, settings, now))
        for state in alerts_now(store, now).values()  # acks attached (DESIGN §5)
    ]
    return tuple(sorted(views, key=lambda v: (-_rank(v.severity), v.rule, v.account, v.group)))


def _rank(severity: str) -> int:
    return {"critical": 3, "warning": 2, "info": 1}.get(severity, 0)


def _alert(state: AlertState, silence: Silence | None, muted: bool) -> AlertView:
    acked_by, ack_reason, escalated = ack_of(state)
    return AlertView(
        rule=state.key.rule,
        account=state.key.account,
        group=state.key.group,
        phase=state.phase.value,
        status=status_word(state.phase.value, silence is not None, acked_by, muted, escalated),
        severity=state.severity.label,
        since=state.active_since,
        fired_at=state.fired_at,
        value=state.value,
        threshold=state.threshold,
        silenced_by=None if silence is None else silence.id,
        muted=muted,
        acked_by=acked_by,
        ack_reason=ack_reason,
        escalated=escalated,
    )


def ack_of(state: AlertState) -> tuple[str | None, str | None, bool]:
    """(acked by, why, escalated) of an alert state, when the state carries them (the
    acknowledgements of DESIGN §5 add these attributes; absent, nothing is acked)."""
    by = getattr(state, "acked_by", None)
    reason = getattr(state, "ack_reason", None)
    escalated = bool(getattr(state, "escalated_at", None) or getattr(state, "escalated", False))
    return (None if by is None else str(by)), (None if reason is None else str(reason)), escalated


def status_word(
    phase: str, silenced: bool, acked_by: str | None, muted: bool, escalated: bool
) -> AlertStatus:
    """The one word shown for an alert: silenced > acked > muted > escalated > phase."""
    if silenced:
        return "silenced"
    if acked_by is not None:
        return "acked"
    if muted:
        return "muted"
    if escalated:
        return "escalated"
    return "firing" if phase == "firing" else "pending"


def _muted(state: AlertState, rules: dict[str, Rule], settings: Settings, now: datetime) -> bool:
    """Muted by the rule's `mute`, or every route the alert goes to is muted now."""
    rule = rules.get(state.key.rule)
    if rule is not None and is_muted(rule.mute, now):
        return True
    names = (rule.routes if rule is not None else ()) or (settings.notify.default_route,)
    routes = [settings.notify.routes.get(n) for n in names if n is not None]
    return bool(routes) and all(r is not None and is_muted(r.mute, now) for r in routes)


def silences(store: Store, now: datetime) -> tuple[SilenceView, ...]:
    """The silences in force, soonest to end first."""
    return tuple(
        SilenceView(s.id, s.rule_glob, s.account, s.reason, s.created_by, s.expires_at)
        for s in sorted(Silences(store).active(now), key=lambda s: s.expires_at)
    )


def mute_windows(
    settings: Settings, rules: Sequence[Rule], now: datetime
) -> tuple[MuteWindowView, ...]:
    """Every rule's and route's mute window that is open now or opens within a week."""
    specs = [(f"rule {r.name}", spec) for r in rules for spec in r.mute]
    specs += [(f"route {n}", spec) for n, r in settings.notify.routes.items() for spec in r.mute]
    found = []
    for owner, spec in specs:
        window = next_opening(spec, now)
        if window is not None and window[0] < now + UPCOMING:
            found.append(MuteWindowView(owner, spec, window[0], window[1], window[0] <= now))
    return tuple(sorted(found, key=lambda w: (w.start, w.owner)))
