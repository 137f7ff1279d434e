"""The balance chart's geometry: a `Chart` (watcher/service/webmodel.py) in SVG
coordinates. Pure; time comes in with the chart (`start`, `end`) and the runway.

The plot covers the span and a fifth of it beyond `end`, where the runway projection
runs from the current value toward the floor. More samples than `MAX_POINTS` are thinned
to the last sample of each of `MAX_POINTS` equal time slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from watcher.service.webmodel import Chart, Point, Runway

WIDTH, HEIGHT = 640.0, 220.0
LEFT, RIGHT, TOP, BOTTOM = 64.0, 12.0, 12.0, 24.0
FUTURE = 0.2  # the share of the span drawn beyond `end`, for the projection
MAX_POINTS = 320


@dataclass(frozen=True, slots=True)
class Line:
    """A labelled straight line from (x1, y1) to (x2, y2); `kind` becomes its CSS class."""

    x1: float
    y1: float
    x2: float
    y2: float
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class Geometry:
    """What the SVG draws: the balance polyline, threshold and top-up lines, the
    projection, the `now` line and axis ticks (y: value labels, x: time labels)."""

    width: float
    height: float
    points: tuple[tuple[float, float], ...]
    thresholds: tuple[Line, ...]
    topups: tuple[Line, ...]
    projection: Line | None
    now: Line
    y_ticks: tuple[tuple[float, str], ...]
    x_ticks: tuple[tuple[float, str], ...]

    @property
    def polyline(self) -> str:
        """The `points` attribute of the balance polyline."""
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)


@dataclass(frozen=True, slots=True)
class _Scale:
    t0: float
    t1: float
    v0: float
    v1: float

    def x(self, at: datetime) -> float:
        share = (at.timestamp() - self.t0) / (self.t1 - self.t0)
        return round(LEFT + min(max(share, 0.0), 1.0) * (WIDTH - LEFT - RIGHT), 1)

    def y(self, value: Decimal | float) -> float:
        share = (float(value) - self.v0) / (self.v1 - self.v0)
        return round(HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM), 1)


def thin(points: Sequence[Point], start: datetime, end: datetime, limit: int) -> list[Point]:
    """At most `limit` points: the last sample of each of `limit` equal slots of the span."""
    if len(points) <= limit:
        return list(points)
    width = (end - start).total_seconds() / limit
    slots: dict[int, Point] = {}
    for point in points:
        slot = min(int((point.at - start).total_seconds() // width), limit - 1)
        slots[slot] = point
    return [slots[k] for k in sorted(slots)]


def geometry(chart: Chart, runway: Runway | None, current: Decimal | None) -> Geometry:
    """Lay out `chart` (with the projection from `current` along `runway`)."""
    points = thin(chart.points, chart.start, chart.end, MAX_POINTS)
    scale = _scale(chart, points, runway, current)
    now_x = scale.x(chart.end)
    return Geometry(
        width=WIDTH,
        height=HEIGHT,
        points=tuple((scale.x(p.at), scale.y(p.value)) for p in points),
        thresholds=tuple(
            Line(LEFT, scale.y(t.value), WIDTH - RIGHT, scale.y(t.value), t.severity, _th(t.rule))
            for t in chart.thresholds
        ),
        topups=tuple(
            Line(scale.x(m.at), TOP, scale.x(m.at), HEIGHT - BOTTOM, m.state, f"top-up #{m.id}")
            for m in chart.topups
        ),
        projection=_projection(chart, scale, runway, current),
        now=Line(now_x, TOP, now_x, HEIGHT - BOTTOM, "now", "now"),
        y_ticks=_y_ticks(scale),
        x_ticks=((LEFT, f"{chart.start:%m-%d %H:%M}"), (now_x, f"{chart.end:%m-%d %H:%M}")),
    )


def _th(rule: str) -> str:
    return f"threshold of {rule}"


def _scale(
    chart: Chart, points: Sequence[Point], runway: Runway | None, current: Decimal | None
) -> _Scale:
    t0 = chart.start.timestamp()
    t1 = chart.end.timestamp() + FUTURE * (chart.end.timestamp() - t0)
    values = [float(p.value) for p in points] + [float(t.value) for t in chart.thresholds]
    if current is not None:
        values.append(float(current))
        if runway is not None and runway.runs_out_at is not None:
            values.append(float(runway.floor))
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (high - low) * 0.08 or max(abs(high) * 0.1, 1.0)
    return _Scale(t0, t1, low - pad, high + pad)


def _projection(
    chart: Chart, scale: _Scale, runway: Runway | None, current: Decimal | None
) -> Line | None:
    """From (`end`, current) toward (runs_out_at, floor), cut at the plot's right edge."""
    if runway is None or current is None or runway.runs_out_at is None:
        return None
    t_now, t_hit = chart.end.timestamp(), runway.runs_out_at.timestamp()
    if t_hit <= t_now:
        return None
    t_end = min(t_hit, scale.t1)
    value = float(current) + (float(runway.floor) - float(current)) * (t_end - t_now) / (
        t_hit - t_now
    )
    x_end = round(LEFT + (t_end - scale.t0) / (scale.t1 - scale.t0) * (WIDTH - LEFT - RIGHT), 1)
    return Line(
        scale.x(chart.end),
        scale.y(current),
        x_end,
        scale.y(value),
        "projection",
        f"runs out in {runway.runs_out_in}",
    )


def _y_ticks(scale: _Scale) -> tuple[tuple[float, str], ...]:
    steps = 4
    values = [scale.v0 + (scale.v1 - scale.v0) * i / steps for i in range(steps + 1)]
    return tuple((scale.y(v), f"{v:,.2f}") for v in values)
