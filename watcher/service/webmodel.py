"""The status page's view model (DESIGN §11): plain values, read from the state by
watcher/service/webview.py, rendered as HTML by watcher/service/web.py and served as
JSON at `/api/v1/status`. Its JSON Schema (`status_schema`) is served at
`/api/v1/schema` and committed as docs/status.schema.json.

Money is a decimal string in JSON (`"45.50"`), times are ISO 8601 UTC.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

SPANS = {"24h": 24, "7d": 7 * 24, "30d": 30 * 24}
"""The chart's selectable spans, in hours (`?span=`)."""
DEFAULT_SPAN = "24h"

AlertStatus = Literal["pending", "firing", "acked", "silenced", "muted", "escalated"]


@dataclass(frozen=True, slots=True)
class Point:
    """One balance sample of the charted field."""

    at: datetime
    value: Decimal


@dataclass(frozen=True, slots=True)
class ThresholdLine:
    """A balance rule's threshold on the charted field: warning or critical."""

    rule: str
    severity: str
    value: Decimal


@dataclass(frozen=True, slots=True)
class TopupMarker:
    """A ledger entry inside the chart's span (succeeded, failed, unknown, ...)."""

    id: int
    at: datetime
    amount: Decimal
    state: str


@dataclass(frozen=True, slots=True)
class Runway:
    """The burn rate fitted over the last `lookback_hours` and when `floor` is reached
    (`runs_out_at` None: not spending, or beyond ten years)."""

    burn_per_hour: Decimal
    floor: Decimal
    runs_out_in: str
    runs_out_at: datetime | None
    lookback_hours: float


@dataclass(frozen=True, slots=True)
class Chart:
    """What the chart shows: the samples of the span, threshold lines, top-up markers."""

    field: str
    span: str
    start: datetime
    end: datetime
    points: tuple[Point, ...]
    thresholds: tuple[ThresholdLine, ...]
    topups: tuple[TopupMarker, ...]


@dataclass(frozen=True, slots=True)
class TopupUse:
    """Top-ups against the caps: in the last 24 h (`day`) and 30 days (`month`)."""

    enabled: bool
    mode: str
    day_used: Decimal
    day_cap: Decimal
    month_used: Decimal
    month_cap: Decimal | None
    last_post: datetime | None


@dataclass(frozen=True, slots=True)
class HoldView:
    """A fraud hold in force (DESIGN §6.3); `cause` may quote an audit event."""

    id: int
    kind: str
    rule: str
    cause: str
    held_at: datetime
    until: datetime | None


@dataclass(frozen=True, slots=True)
class SourceView:
    """One source's last poll and error (`failing_since` None while it works)."""

    source: str
    last_attempt: datetime
    last_ok: datetime | None
    failing_since: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class AccountView:
    """One watched account: its balance now, the chart, the runway, caps and sources."""

    name: str
    provider: str
    currency: str
    balance: Decimal | None
    balance_at: datetime | None
    runway: Runway | None
    chart: Chart
    topups: TopupUse
    holds: tuple[HoldView, ...]
    sources: tuple[SourceView, ...]


@dataclass(frozen=True, slots=True)
class AlertView:
    """One active alert. `status` is the word shown: silenced, acked, muted and
    escalated win over the phase (pending, firing). `acked_by` / `ack_reason` /
    `escalated` are filled when the state carries them (acknowledgements, DESIGN §5)."""

    rule: str
    account: str
    group: str
    phase: str
    status: AlertStatus
    severity: str
    since: datetime
    fired_at: datetime | None
    value: str
    threshold: str
    silenced_by: int | None
    muted: bool
    acked_by: str | None
    ack_reason: str | None
    escalated: bool


@dataclass(frozen=True, slots=True)
class SilenceView:
    id: int
    rule_glob: str
    account: str | None
    reason: str
    created_by: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class MuteWindowView:
    """A mute window of a rule or route that is open now or opens within a week."""

    owner: str
    spec: str
    start: datetime
    end: datetime
    active: bool


@dataclass(frozen=True, slots=True)
class LedgerView:
    """A recent top-up ledger entry."""

    id: int
    at: datetime
    account: str
    amount: Decimal
    currency: str
    state: str
    rule: str
    detail: str


@dataclass(frozen=True, slots=True)
class RouteView:
    """A notification route: undelivered targets and the last failure."""

    name: str
    pending: int
    consecutive_failures: int
    last_failure: str | None
    last_failure_at: datetime | None


@dataclass(frozen=True, slots=True)
class CycleView:
    at: datetime
    duration_s: float
    errors: int


@dataclass(frozen=True, slots=True)
class StatusView:
    """Everything the page shows, at `generated_at`."""

    generated_at: datetime
    span: str
    last_cycle: CycleView | None
    topups_paused: str | None
    accounts: tuple[AccountView, ...]
    alerts: tuple[AlertView, ...]
    silences: tuple[SilenceView, ...]
    mute_windows: tuple[MuteWindowView, ...]
    ledger: tuple[LedgerView, ...]
    routes: tuple[RouteView, ...]


@functools.cache
def _adapter() -> Any:
    from pydantic import TypeAdapter  # built on first use: the page is optional

    return TypeAdapter(StatusView)


def to_json(view: StatusView) -> bytes:
    """The view as JSON (`/api/v1/status`)."""
    data: bytes = _adapter().dump_json(view, indent=1)
    return data


def status_schema() -> dict[str, Any]:
    """The JSON Schema of `/api/v1/status` (as served and committed under docs/)."""
    schema: dict[str, Any] = _adapter().json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "account-watcher /api/v1/status",
    }


def status_schema_text() -> str:
    """`status_schema` as the text of docs/status.schema.json."""
    return json.dumps(status_schema(), indent=2) + "\n"
