"""Reading the state into the status page's view model (watcher/service/webmodel.py).

`open_readonly` (watcher/state/store.py) gives the page its own read-only connection,
SQLite or PostgreSQL (never the daemon's: a page request cannot block or join a cycle's
transaction); `read_status` assembles a
`StatusView` from it, the settings and the rules, at a given `now`. Rendering is
elsewhere (watcher/service/web.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from watcher.config.accounts import AccountConfig
from watcher.config.settings import Settings
from watcher.core.forecast import fit_burn, runs_out_in, runs_out_text
from watcher.core.holds import active_holds
from watcher.core.ledger_types import Entry, EntryState
from watcher.core.model import BALANCE_FIELDS
from watcher.core.rulefile import Rule
from watcher.core.rulekinds import BalanceRule, ForecastRule
from watcher.core.topup import Caps, usage
from watcher.service import webalerts
from watcher.service.webchart import MAX_POINTS
from watcher.service.webmodel import (
    SPANS,
    AccountView,
    Chart,
    CycleView,
    HoldView,
    LedgerView,
    Point,
    RouteView,
    Runway,
    SourceView,
    StatusView,
    ThresholdLine,
    TopupMarker,
    TopupUse,
)
from watcher.state.alerts import SourceHealth
from watcher.state.db import dt, ts
from watcher.state.ledger import Ledger
from watcher.state.store import Store

RECENT_LEDGER = 20
LEDGER_DAYS = 7
DEFAULT_LOOKBACK = timedelta(hours=6)  # the runway's fit without a forecast rule
MONTH = timedelta(days=30)


def read_status(
    store: Store, settings: Settings, rules: Sequence[Rule], now: datetime, span: str
) -> StatusView:
    """The whole view at `now`, the chart over `span` (a key of `SPANS`)."""
    ledger = Ledger(store)
    health = store.source_health()
    cycle = store.last_cycle()
    pause = ledger.paused()
    return StatusView(
        generated_at=now,
        span=span,
        last_cycle=None if cycle is None else CycleView(cycle.at, cycle.duration_s, cycle.errors),
        topups_paused=None if pause is None else f"paused by {pause.paused_by}: {pause.reason}",
        accounts=tuple(
            _account(store, ledger, a, rules, health, now, span) for a in settings.accounts
        ),
        alerts=webalerts.alerts(store, settings, rules, now),
        silences=webalerts.silences(store, now),
        mute_windows=webalerts.mute_windows(settings, rules, now),
        ledger=tuple(_ledger_line(e) for e in _recent(ledger, now)),
        routes=tuple(_route(store, name) for name in settings.notify.routes),
    )


# ---------------------------------------------------------------------------- accounts


def _account(
    store: Store,
    ledger: Ledger,
    account: AccountConfig,
    rules: Sequence[Rule],
    health: Sequence[SourceHealth],
    now: datetime,
    span: str,
) -> AccountView:
    name = account.name
    field = chart_field(rules, name)
    start = now - timedelta(hours=SPANS[span])
    samples = series(store, name, field, start, now - start)
    latest = _latest(store, name, field)
    entries = ledger.entries(account=name, since=now - max(MONTH, timedelta(hours=SPANS[span])))
    return AccountView(
        name=name,
        provider=account.provider,
        currency=latest[2] if latest else getattr(account, "currency", ""),
        balance=latest[1] if latest else None,
        balance_at=latest[0] if latest else None,
        runway=_runway(store, rules, name, field, latest, now),
        chart=Chart(
            field=field,
            span=span,
            start=start,
            end=now,
            points=tuple(Point(at, value) for at, value in samples),
            thresholds=thresholds(rules, name, field),
            topups=tuple(
                TopupMarker(e.id, e.created_at, e.amount, e.state.value)
                for e in entries
                if e.created_at >= start and e.state is not EntryState.REFUSED
            ),
        ),
        topups=_topup_use(ledger, account, entries, now),
        holds=_holds(ledger, account, now),
        sources=tuple(
            SourceView(h.source, h.last_attempt, h.last_ok, h.failing_since, h.last_error)
            for h in health
            if h.account == name
        ),
    )


def _balance_rules(rules: Sequence[Rule], account: str) -> list[BalanceRule]:
    return [r for r in rules if isinstance(r, BalanceRule) and r.applies_to(account)]


def chart_field(rules: Sequence[Rule], account: str) -> str:
    """The balance field the chart shows: the first balance rule's, else available_credit."""
    found = _balance_rules(rules, account)
    return found[0].field if found else "available_credit"


def thresholds(rules: Sequence[Rule], account: str, field: str) -> tuple[ThresholdLine, ...]:
    """Every severity's threshold of the balance rules on `field` of `account`."""
    return tuple(
        ThresholdLine(rule.name, severity.label, value)
        for rule in _balance_rules(rules, account)
        if rule.field == field
        for severity, value in sorted(rule.levels.items())
    )


def series(
    store: Store, account: str, field: str, since: datetime, span: timedelta | None = None
) -> list[tuple[datetime, Decimal]]:
    """`field` of the samples of `account` since `since`, oldest first; with `span` and
    more than `MAX_POINTS` samples, the last sample of each of `MAX_POINTS` equal slots
    of the span (thinned in SQL: a week at a 60 s interval is 10,080 rows per account)."""
    column = _column(field)
    where = "FROM balance_samples WHERE account = ? AND at >= ?"
    params: list[object] = [account, ts(since)]
    sql = f"SELECT at, {column} {where}"
    if span is not None and store.query(f"SELECT count(*) {where}", params)[0][0] > MAX_POINTS:
        epoch = store.dialect.epoch
        slot = f"({epoch.format('at')} - {epoch.format('?')}) * ? / ?"  # integer division
        sql = (
            f"SELECT at, {column} FROM balance_samples WHERE account = ? "  # noqa: S608
            "AND at IN (SELECT max(at) FROM balance_samples WHERE account = ? AND at >= ? "
            f"GROUP BY {slot})"
        )
        params = [account, account, ts(since), ts(since), MAX_POINTS]
        params.append(max(int(span.total_seconds()), 1))
    rows = store.query(sql + " ORDER BY 1", params)
    return [(dt(at), Decimal(value)) for at, value in rows]


def _column(field: str) -> str:
    if field not in BALANCE_FIELDS:
        raise ValueError(f"not a balance field: {field}")
    return field


def _latest(store: Store, account: str, field: str) -> tuple[datetime, Decimal, str] | None:
    rows = store.query(
        f"SELECT at, {_column(field)}, currency FROM balance_samples "  # noqa: S608
        "WHERE account = ? ORDER BY at DESC LIMIT 1",
        (account,),
    )
    return (dt(rows[0][0]), Decimal(rows[0][1]), str(rows[0][2])) if rows else None


def _runway(
    store: Store,
    rules: Sequence[Rule],
    account: str,
    field: str,
    latest: tuple[datetime, Decimal, str] | None,
    now: datetime,
) -> Runway | None:
    """Burn over the forecast rule's lookback (else 6 h) toward its floor (else 0)."""
    if latest is None:
        return None
    forecast = next(
        (r for r in rules if isinstance(r, ForecastRule) and r.applies_to(account)), None
    )
    lookback = forecast.lookback if forecast is not None else DEFAULT_LOOKBACK
    floor = forecast.floor if forecast is not None else Decimal(0)
    burn = fit_burn(series(store, account, field, now - lookback))
    if burn is None:
        return None
    current = latest[1]
    eta = runs_out_in(current, floor, burn)
    return Runway(
        burn_per_hour=burn.per_hour,
        floor=floor,
        runs_out_in=runs_out_text(current, floor, eta),
        runs_out_at=None if eta is None else now + eta,
        lookback_hours=lookback.total_seconds() / 3600,
    )


def _topup_use(
    ledger: Ledger, account: AccountConfig, entries: Sequence[Entry], now: datetime
) -> TopupUse:
    caps = Caps.of(account.topup)
    used = usage(entries, now)
    guard = ledger.guard()
    mode = "paying" if account.topup.enabled else "dry run"
    if guard.pause is not None:
        mode = "not paying: top-ups paused"
    elif guard.lost:
        mode = "not paying: state lost"
    elif _holds(ledger, account, now):
        mode = "not paying: on hold"
    return TopupUse(
        enabled=account.topup.enabled,
        mode=mode,
        day_used=used.day,
        day_cap=caps.max_per_day,
        month_used=used.month,
        month_cap=caps.max_per_month,
        last_post=used.last_post,
    )


def _holds(ledger: Ledger, account: AccountConfig, now: datetime) -> tuple[HoldView, ...]:
    after = account.topup.hold_after
    live = active_holds(ledger.holds.unreleased(account.name), now, after)
    return tuple(
        HoldView(h.id, h.kind.value, h.rule, h.cause, h.held_at, h.until(after)) for h in live
    )


# ---------------------------------------------------------------------------- ledger, routes


def _recent(ledger: Ledger, now: datetime) -> list[Entry]:
    entries = ledger.entries(since=now - timedelta(days=LEDGER_DAYS))[-RECENT_LEDGER:]
    return sorted(entries, key=lambda e: (e.created_at, e.id), reverse=True)


def _ledger_line(entry: Entry) -> LedgerView:
    detail = entry.error or entry.transaction_id or entry.reason or ""
    if entry.state is EntryState.UNKNOWN:
        detail = f"unknown outcome: settle with `account-watcher topups settle {entry.id}`"
    return LedgerView(
        id=entry.id,
        at=entry.created_at,
        account=entry.account,
        amount=entry.amount,
        currency=entry.currency,
        state=entry.state.value,
        rule=entry.rule,
        detail=detail,
    )


def _route(store: Store, name: str) -> RouteView:
    pending = store.query(
        "SELECT count(*) FROM outbox_targets WHERE route = ? AND state = 'pending'", (name,)
    )
    health = store.query("SELECT consecutive_failures FROM route_health WHERE route = ?", (name,))
    failure = store.query(
        "SELECT t.last_error, m.created_at FROM outbox_targets t "
        "JOIN outbox_messages m ON m.id = t.message_id "
        "WHERE t.route = ? AND t.last_error IS NOT NULL AND t.last_error != '' "
        "ORDER BY m.id DESC LIMIT 1",
        (name,),
    )
    return RouteView(
        name=name,
        pending=int(pending[0][0]),
        consecutive_failures=int(health[0][0]) if health else 0,
        last_failure=str(failure[0][0]) if failure else None,
        last_failure_at=dt(failure[0][1]) if failure else None,
    )
