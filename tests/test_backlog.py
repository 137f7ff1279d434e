"""A backlog larger than one cycle can read: the real CLI (`once`, one cycle per process)
against the simulator with a latency per page and a 1 s cycle budget
(WATCHER_ALLOW_FAST_POLL=1). Each cycle must keep what it read and go on from there.
At the end, table-driven unit tests of the resume point and of the paging stop."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import API_KEY, REPO, Receiver, cli_env, run_cli, wait_for, write_config

from watcher.providers.telnyx.client import Page
from watcher.providers.telnyx.sim import Fault, SimServer
from watcher.providers.telnyx.sources import Resume, _read_pages
from watcher.state.store import ts

PAGE_LATENCY = 0.25  # seconds per page: a 1 s budget reads a few pages, never all
MAX_CYCLES = 10  # a cycle reads at least one page; the backlogs are 7 pages

WEBHOOK_RULES = """\
rules:
  - {name: all-counted, kind: webhook_failures, window: 1h, at_least: 1540, severity: critical}
  - {name: counted-twice, kind: webhook_failures, window: 1h, at_least: 1541, severity: critical}
  - {name: recent, kind: webhook_failures, window: 10m, at_least: 40}
  - {name: recent-twice, kind: webhook_failures, window: 10m, at_least: 41}
"""

AUDIT_RULES = """\
rules:
  - name: member-change
    kind: audit
    severity: critical
    match: {change_made_by: organization_member}
"""


def once(config: Path) -> str:
    result = run_cli("--config", str(config), "once", env=cli_env(WATCHER_ALLOW_FAST_POLL="1"))
    assert result.returncode == 0, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    return result.stdout


def count(state: Path, sql: str, *params: str) -> int:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        value: int = db.execute(sql, params).fetchone()[0]
        return value


def fast_config(tmp_path: Path, sim: SimServer, receiver: Receiver, rules: str) -> Path:
    return write_config(tmp_path, sim.base_url, [receiver.url], rules, interval="1s", timeout="1s")


def test_webhook_backlog_is_read_page_by_page_over_several_cycles(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    now = datetime.now(UTC)
    sim.account.add_webhook_backlog(
        1500, start=now - timedelta(minutes=50), end=now - timedelta(minutes=20)
    )
    sim.account.add_webhook_backlog(40, start=now - timedelta(minutes=5), end=now)
    sim.account.add_webhook_backlog(
        500, start=now - timedelta(minutes=50), end=now, status="delivered"
    )
    sim.account.inject_fault("/webhook_deliveries", Fault.delay(PAGE_LATENCY), times=-1)
    config = fast_config(tmp_path, sim, receiver, WEBHOOK_RULES)
    state = tmp_path / "state.db"
    stored = "SELECT COUNT(*) FROM webhook_failures"

    once(config)
    progress = [count(state, stored)]
    assert 0 < progress[0] < 1540, "the first cycle keeps what it read and stops at its budget"
    while progress[-1] < 1540 and len(progress) < MAX_CYCLES:
        once(config)
        progress.append(count(state, stored))
        assert progress[-1] > progress[-2], f"a cycle made no progress: {progress}"
    assert progress[-1] == 1540, progress

    recent = now - timedelta(minutes=10)
    assert (
        count(state, "SELECT COUNT(*) FROM webhook_failures WHERE started_at >= ?", ts(recent))
        == 40
    )
    fired = sorted(title for title in receiver.titles if "firing" in title)
    assert fired == [
        "[CRITICAL] all-counted firing — main",
        "[WARNING] recent firing — main",
    ], receiver.titles

    before = sim.account.request_count("/webhook_deliveries")
    once(config)  # caught up: the next scan re-reads the overlap only, one page
    assert sim.account.request_count("/webhook_deliveries") - before == 1
    assert count(state, stored) == 1540


def test_audit_backlog_over_several_cycles_alerts_each_event_exactly_once(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = fast_config(tmp_path, sim, receiver, AUDIT_RULES)
    state = tmp_path / "state.db"
    started = datetime.now(UTC)
    once(config)  # the very first start: the state is created
    # inside the overlap window but before the very first start: never alerted
    sim.account.add_audit_event(
        created_at=started - timedelta(minutes=1),
        change_made_by="organization_member",
        resource_id="res-before-start",
    )
    begin = datetime.now(UTC)
    sim.account.add_audit_backlog(1500, start=begin, end=begin + timedelta(milliseconds=300))
    expected = [f"res-{i:02d}" for i in range(30)]
    for i, resource in enumerate(expected):
        sim.account.add_audit_event(
            created_at=begin + timedelta(milliseconds=10 * i),
            change_made_by="organization_member",
            resource_id=resource,
        )
    sim.account.inject_fault("/audit_events", Fault.delay(PAGE_LATENCY), times=-1)
    seen = "SELECT COUNT(*) FROM audit_seen"

    once(config)
    progress = [count(state, seen)]
    assert 0 < progress[0] < 1530, "the first cycle keeps what it read and stops at its budget"
    while progress[-1] < 1530 and len(progress) < MAX_CYCLES:
        once(config)
        progress.append(count(state, seen))
        assert progress[-1] > progress[-2], f"a cycle made no progress: {progress}"
    assert progress[-1] == 1530, progress
    for _ in range(2):  # the overlap is re-read: nothing is alerted again
        once(config)

    titles = receiver.titles
    assert len(titles) >= 2, f"the backlog was alerted over several cycles: {titles}"
    counts = [
        re.fullmatch(r"\[CRITICAL\] member-change: (\d+) audit events? — main", t) for t in titles
    ]
    assert all(counts), titles
    assert sum(int(m.group(1)) for m in counts if m) == 30
    listed = [r for m in receiver.messages for r in re.findall(r"res-[\w-]+", str(m["message"]))]
    assert sorted(listed) == expected, "each matching event is alerted once, none lost"


def page_queries(sim: SimServer, path: str) -> list[dict[str, str]]:
    return [r.query for r in sim.account.requests if r.path == path]


def test_a_failed_page_keeps_the_pages_before_it_and_the_next_cycle_resumes_there(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    now = datetime.now(UTC)
    sim.account.add_webhook_backlog(1000, start=now - timedelta(minutes=40), end=now)
    for _ in range(2):  # pages 1 and 2 are answered, page 3 is refused
        sim.account.inject_fault("/webhook_deliveries", Fault.delay(0))
    sim.account.inject_fault("/webhook_deliveries", Fault.status(422))
    config = write_config(tmp_path, sim.base_url, [receiver.url], WEBHOOK_RULES)
    state = tmp_path / "state.db"

    first = once(config)
    assert "webhooks: FAILED" in first
    assert count(state, "SELECT COUNT(*) FROM webhook_failures") == 500
    asked = len(page_queries(sim, "/webhook_deliveries"))
    once(config)
    resumed = page_queries(sim, "/webhook_deliveries")[asked:]
    assert [q["page[number]"] for q in resumed] == ["3", "4"]
    bounds = {(q["filter[started_at][gte]"], q["filter[started_at][lte]"]) for q in resumed}
    assert len(bounds) == 1, "a resumed read keeps the bounds it started with"
    assert count(state, "SELECT COUNT(*) FROM webhook_failures") == 1000


def resume_page(state: Path) -> int | None:
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        row = db.execute("SELECT value FROM cursors WHERE source = 'webhooks#resume'").fetchone()
    return None if row is None else int(json.loads(row[0])["page"])


def test_a_crash_in_the_middle_of_a_backlog_writes_nothing_and_the_next_cycle_resumes(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    now = datetime.now(UTC)
    sim.account.add_webhook_backlog(1000, start=now - timedelta(minutes=40), end=now)
    for _ in range(2):  # cycle 1: pages 1 and 2 are answered, page 3 is refused
        sim.account.inject_fault("/webhook_deliveries", Fault.delay(0))
    sim.account.inject_fault("/webhook_deliveries", Fault.status(422))
    config = write_config(tmp_path, sim.base_url, [receiver.url], WEBHOOK_RULES)
    state = tmp_path / "state.db"
    stored = "SELECT COUNT(*) FROM webhook_failures"
    once(config)
    assert (count(state, stored), resume_page(state)) == (500, 3)

    sim.account.inject_fault("/webhook_deliveries", Fault.delay(0))  # cycle 2: page 3 read,
    sim.account.inject_fault("/webhook_deliveries", Fault.delay(5))  # killed on page 4
    asked = len(page_queries(sim, "/webhook_deliveries"))
    child = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "once"],
        env=cli_env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(page_queries(sim, "/webhook_deliveries")) >= asked + 2)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        child.kill()
    pages = [q["page[number]"] for q in page_queries(sim, "/webhook_deliveries")[asked:]]
    assert pages == ["3", "4"]
    assert (count(state, stored), resume_page(state)) == (500, 3), "nothing written mid-cycle"

    asked = len(page_queries(sim, "/webhook_deliveries"))
    once(config)  # resumes at the last committed page, not at page 1
    pages = [q["page[number]"] for q in page_queries(sim, "/webhook_deliveries")[asked:]]
    assert pages == ["3", "4"]
    assert (count(state, stored), resume_page(state)) == (1000, None)


def test_a_failed_audit_page_loses_and_repeats_nothing(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], AUDIT_RULES)
    once(config)  # the very first start
    begin = datetime.now(UTC)
    for i in range(600):
        member = i % 100 == 0
        sim.account.add_audit_event(
            created_at=begin + timedelta(microseconds=i),
            change_made_by="organization_member" if member else "account_owner",
            resource_id=f"res-{i:03d}" if member else None,
        )
    sim.account.inject_fault("/audit_events", Fault.delay(0))
    sim.account.inject_fault("/audit_events", Fault.status(422))  # page 2 of 3

    assert "audit: FAILED" in once(config)
    assert receiver.messages == []
    once(config)
    once(config)
    assert receiver.titles == ["[CRITICAL] member-change: 6 audit events — main"]
    listed = re.findall(r"res-\d+", str(receiver.messages[0]["message"]))
    assert listed == [f"res-{i:03d}" for i in range(0, 600, 100)]


T0 = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "resume",
    [Resume(T0, T0 + timedelta(minutes=5), 7), Resume(T0, None), Resume(T0, None, 250)],
)
def test_a_resume_point_reads_back_as_written(resume: Resume) -> None:
    assert Resume.parse(resume.text()) == resume


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "not json",
        "[]",
        '{"since": "2026-12-01T10:00:00+00:00", "until": null}',
        '{"since": "yesterday", "until": null, "page": 2}',
        '{"since": "2026-12-01T10:00:00+00:00", "until": null, "page": 0}',
        '{"since": "2026-12-01T10:00:00+00:00", "until": 5, "page": 2}',
    ],
)
def test_an_unreadable_resume_point_means_a_new_read(text: str | None) -> None:
    assert Resume.parse(text) is None


async def three_pages() -> AsyncGenerator[Page[int], None]:
    for number in (1, 2, 3):
        yield Page(number, [number], number == 3, 3)


@pytest.mark.parametrize(
    ("stop", "taken", "done", "page"),
    [
        pytest.param(None, [1, 2, 3], True, 0, id="no-budget-reads-all"),
        pytest.param(float("inf"), [1, 2, 3], True, 0, id="time-left-reads-all"),
        pytest.param(0.0, [1], False, 1, id="spent-reads-one-page-only"),
    ],
)
async def test_pages_are_read_while_time_is_left_and_at_least_one(
    stop: float | None, taken: list[int], done: bool, page: int
) -> None:
    got: list[int] = []
    read = await _read_pages(three_pages(), stop, lambda p: got.extend(p.items))
    assert (got, read.done, read.page) == (taken, done, page)
