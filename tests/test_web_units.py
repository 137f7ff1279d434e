"""Pure parts of the status page, time as a parameter: the chart's geometry, the word
shown for an alert, and when a mute window opens next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from watcher.core.model import Balance
from watcher.core.mute import next_opening
from watcher.service.webalerts import status_word
from watcher.service.webchart import BOTTOM, HEIGHT, LEFT, MAX_POINTS, TOP, WIDTH, geometry, thin
from watcher.service.webmodel import Chart, Point, Runway, ThresholdLine, TopupMarker
from watcher.service.webview import series
from watcher.state.store import StateTarget, Store, StoreError, open_readonly, open_store

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def chart(points: list[tuple[float, str]], **kw: object) -> Chart:
    """Points as (hours before NOW, value)."""
    return Chart(
        field="available_credit",
        span="24h",
        start=NOW - DAY,
        end=NOW,
        points=tuple(Point(NOW - timedelta(hours=h), Decimal(v)) for h, v in points),
        thresholds=kw.get("thresholds", ()),  # type: ignore[arg-type]
        topups=kw.get("topups", ()),  # type: ignore[arg-type]
    )


def test_points_span_the_plot_left_to_now_and_high_values_are_high() -> None:
    g = geometry(chart([(24, "200"), (12, "150"), (0, "100")]), None, Decimal("100"))
    xs = [x for x, _ in g.points]
    ys = [y for _, y in g.points]
    assert xs[0] == LEFT
    assert xs[-1] == g.now.x1  # the newest sample sits on the `now` line
    assert xs == sorted(xs)
    # the future fifth of the plot lies right of `now`
    assert g.now.x1 == pytest.approx(LEFT + (WIDTH - LEFT - 12) / 1.2, abs=0.1)
    assert ys[0] < ys[1] < ys[2]  # SVG y grows downward: 200 is highest
    assert all(TOP <= y <= HEIGHT - BOTTOM for y in ys)
    assert len(g.polyline.split()) == 3


def test_threshold_lines_are_horizontal_at_their_value_and_ordered() -> None:
    lines = (
        ThresholdLine("low", "warning", Decimal("100")),
        ThresholdLine("low", "critical", Decimal("50")),
    )
    g = geometry(chart([(10, "120"), (0, "80")], thresholds=lines), None, Decimal("80"))
    warning, critical = g.thresholds
    assert warning.y1 == warning.y2 and critical.y1 == critical.y2
    assert warning.y1 < critical.y1  # 100 is drawn above 50
    assert (warning.kind, critical.kind) == ("warning", "critical")
    assert warning.x1 == LEFT and warning.x2 == WIDTH - 12


def test_topup_markers_are_vertical_at_their_time() -> None:
    markers = (TopupMarker(7, NOW - timedelta(hours=12), Decimal("100.00"), "succeeded"),)
    g = geometry(chart([(24, "50"), (0, "150")], topups=markers), None, Decimal("150"))
    (m,) = g.topups
    assert m.x1 == m.x2
    assert LEFT < m.x1 < g.now.x1
    assert (m.kind, m.label) == ("succeeded", "top-up #7")


def test_projection_runs_from_now_toward_the_floor_and_is_cut_at_the_edge() -> None:
    near = Runway(Decimal("10"), Decimal(0), "1h", NOW + timedelta(hours=1), 6)
    g = geometry(chart([(2, "30"), (0, "10")]), near, Decimal("10"))
    assert g.projection is not None
    assert (g.projection.x1, g.projection.y1) == (g.now.x1, g.points[-1][1])
    assert g.projection.y2 > g.projection.y1  # going down
    assert g.projection.x2 < WIDTH - 12  # reaches the floor inside the plot
    far = Runway(Decimal("0.1"), Decimal(0), "100h", NOW + timedelta(hours=100), 6)
    g = geometry(chart([(2, "30"), (0, "10")]), far, Decimal("10"))
    assert g.projection is not None and g.projection.x2 == pytest.approx(WIDTH - 12, abs=0.1)
    never = Runway(Decimal(0), Decimal(0), "never", None, 6)
    assert geometry(chart([(0, "10")]), never, Decimal("10")).projection is None


def test_no_samples_and_one_flat_value_still_lay_out() -> None:
    assert geometry(chart([]), None, None).points == ()
    flat = geometry(chart([(3, "5"), (0, "5")]), None, Decimal("5"))
    assert len({y for _, y in flat.points}) == 1


def test_thinning_keeps_the_last_sample_per_slot() -> None:
    points = [Point(NOW - DAY + timedelta(seconds=30 * i), Decimal(i)) for i in range(2880)]
    kept = thin(points, NOW - DAY, NOW, MAX_POINTS)
    assert len(kept) == MAX_POINTS
    assert kept[-1] == points[-1]
    assert thin(points[:10], NOW - DAY, NOW, MAX_POINTS) == points[:10]


@pytest.mark.parametrize(
    ("phase", "silenced", "acked_by", "muted", "escalated", "word"),
    [
        ("pending", False, None, False, False, "pending"),
        ("firing", False, None, False, False, "firing"),
        ("firing", True, None, False, False, "silenced"),
        ("firing", True, "ann", True, True, "silenced"),
        ("firing", False, "ann", True, True, "acked"),
        ("firing", False, None, True, True, "muted"),
        ("firing", False, None, False, True, "escalated"),
    ],
)
def test_status_word(
    phase: str, silenced: bool, acked_by: str | None, muted: bool, escalated: bool, word: str
) -> None:
    assert status_word(phase, silenced, acked_by, muted, escalated) == word


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "now", "window"),
    [
        # Tuesday 2026-12-01 12:00 UTC
        ("22:00-23:00 UTC", "2026-12-01 12:00", ("2026-12-01 22:00", "2026-12-01 23:00")),
        ("11:00-13:00 UTC", "2026-12-01 12:00", ("2026-12-01 11:00", "2026-12-01 13:00")),
        ("Sat 00:00-06:00 UTC", "2026-12-01 12:00", ("2026-12-05 00:00", "2026-12-05 06:00")),
        # past midnight, opened yesterday (Monday) and still open on Tuesday morning
        ("Mon 22:00-07:00 UTC", "2026-12-01 05:00", ("2026-11-30 22:00", "2026-12-01 07:00")),
        ("Mon 22:00-07:00 UTC", "2026-12-01 08:00", ("2026-12-07 22:00", "2026-12-08 07:00")),
        ("Tue 20:00-24:00 UTC", "2026-12-01 12:00", ("2026-12-01 20:00", "2026-12-02 00:00")),
        # Berlin is UTC+1 in December
        (
            "Wed 08:00-09:00 Europe/Berlin",
            "2026-12-01 12:00",
            ("2026-12-02 07:00", "2026-12-02 08:00"),
        ),
        (
            "2026-12-24 00:00-2026-12-27 00:00 UTC",
            "2026-12-01 12:00",
            ("2026-12-24 00:00", "2026-12-27 00:00"),
        ),
        ("2026-11-24 00:00-2026-11-27 00:00 UTC", "2026-12-01 12:00", None),
    ],
)
def test_next_opening(spec: str, now: str, window: tuple[str, str] | None) -> None:
    expected = None if window is None else (at(window[0]), at(window[1]))
    assert next_opening(spec, at(now)) == expected


def _a_day_of_samples(store: Store) -> None:
    with store.transaction():
        for i in range(1440):  # a day at 60 s
            value = Decimal(1000 - i)
            at = NOW - DAY + timedelta(minutes=i)
            store.add_balance_sample("a", at, Balance(value, value, Decimal(0), Decimal(0), "USD"))


def test_series_thins_in_sql_only_beyond_max_points(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        _a_day_of_samples(store)
        full = series(store, "a", "available_credit", NOW - DAY)
        thinned = series(store, "a", "available_credit", NOW - DAY, DAY)
        few = series(store, "a", "available_credit", NOW - timedelta(minutes=30), DAY)
    assert len(full) == 1440
    assert MAX_POINTS - 1 <= len(thinned) <= MAX_POINTS
    assert thinned[-1] == full[-1]  # the newest sample always stays
    assert [at for at, _ in thinned] == sorted(at for at, _ in thinned)
    assert len(few) == 30 and few == full[-30:]  # few samples: every one


def test_both_backends_thin_to_the_same_points(tmp_path: Path, pg_url: str) -> None:
    thinned = []
    for target in (tmp_path / "state.db", pg_url):
        with open_store(target) as store:
            _a_day_of_samples(store)
            thinned.append(series(store, "a", "available_credit", NOW - DAY, DAY))
    assert thinned[0] == thinned[1]


def test_the_pages_postgresql_connection_reads_and_cannot_write(pg_url: str) -> None:
    with pytest.raises(StoreError, match="is not an account-watcher state database"):
        open_readonly(pg_url)  # an empty schema: nothing is created for the page
    with open_store(pg_url) as store:
        store.set_cursor("main", "audit", NOW)
    with open_readonly(pg_url) as page:
        assert page.get_cursor("main", "audit") == NOW
        with pytest.raises(StoreError, match="read-only transaction"):
            page.set_cursor("main", "audit", NOW + DAY)
