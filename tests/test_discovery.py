"""Discovery of Telnyx managed accounts against the simulator (DESIGN §10): a low
balance fires for exactly the right child through the real CLI, a rollup child is never
asked for a balance, the children's keys are nowhere, a child that goes away is reported
once (not on the next cycle, not after a restart), the listing is paginated and read
only when due."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import API_KEY, REPO, Receiver, cli_env, run_cli, wait_for
from discovery_support import ALICE, BOB, CAROL, Reseller, config, reseller
from pydantic import SecretStr

from watcher.providers.telnyx.client import TelnyxClient
from watcher.providers.telnyx.managed import get_managed, list_managed
from watcher.providers.telnyx.sim import Fault, SimAccount, SimServer, free_port
from watcher.service import logs
from watcher.service.cycle import CycleResult, Daemon
from watcher.service.wiring import build_wiring, load_runtime
from watcher.state.discovered import Discovered
from watcher.state.store import Store

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
GONE_TITLE = f"{CAROL}: account no longer listed by main"


@pytest.fixture
def served() -> Iterator[tuple[SimServer, Reseller]]:
    server, found = reseller()
    with server:
        yield server, found


def _firing(receiver: Receiver) -> list[str]:
    return [t for t in receiver.titles if "firing" in t]


def test_once_fires_for_exactly_the_low_child_and_never_reads_a_rollup_balance(
    tmp_path: Path, served: tuple[SimServer, Reseller], receiver: Receiver
) -> None:
    server, found = served
    path = config(tmp_path, server.base_url, [receiver.url])
    assert run_cli("--config", str(path), "check").returncode == 0
    done = run_cli("--config", str(path), "once")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(receiver.messages) >= 1)
    assert _firing(receiver) == [f"[WARNING] child-low firing — {ALICE}"]
    assert f"account {ALICE}: balance: ok" in done.stdout
    assert f"account {BOB}: nothing polled" in done.stdout  # shares main's balance
    assert found.bob.account.request_count() == 0  # its own (low) balance: never read
    assert found.alice.account.request_count("/balance") == 1  # with its own key
    assert found.manager.request_count("/managed_accounts") == 1
    assert found.manager.request_count() == 1 + 3 + 1  # list, 3 single GETs, /balance


def test_secrets_of_children_are_nowhere(
    tmp_path: Path, served: tuple[SimServer, Reseller], receiver: Receiver
) -> None:
    server, found = served
    path = config(tmp_path, server.base_url, [receiver.url])
    env = cli_env(WATCHER_LOG__LEVEL="debug")
    outputs = [run_cli("--config", str(path), "once", env=env)]
    wait_for(lambda: len(receiver.messages) >= 1)
    found.manager.managed.remove(found.carol.id)  # a gone message too
    outputs.append(run_cli("--config", str(path), "once", env=env))
    wait_for(lambda: GONE_TITLE in receiver.titles)
    for command in (["status"], ["status", "--json"], ["accounts"], ["accounts", "--json"]):
        outputs.append(run_cli("--config", str(path), *command, env=env))
    assert [o.returncode for o in outputs[:2]] == [0, 0], outputs[-1].stderr
    texts = [o.stdout + o.stderr for o in outputs] + [repr(m) for m in receiver.messages]
    state = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert len(texts) == 6 + len(receiver.messages) and len(state) > 0
    for secret in found.secrets:
        assert [t for t in texts if secret in t] == []
        assert secret.encode() not in state
    assert any("discovery.listed" in o.stderr for o in outputs[:2])  # debug logs were on


def test_secrets_of_children_are_not_on_the_status_page_or_in_metrics(
    tmp_path: Path, served: tuple[SimServer, Reseller], receiver: Receiver
) -> None:
    server, found = served
    port = free_port()
    path = config(tmp_path, server.base_url, [receiver.url])
    path.write_text(path.read_text() + f"web: {{listen: '127.0.0.1:{port}'}}\n")
    env = {**cli_env(WATCHER_LOG__LEVEL="debug"), "WATCHER_ALLOW_FAST_POLL": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(path), "run"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: ALICE in _get(url + "/metrics"))
        pages = [_get(url + p) for p in ("/metrics", "/api/v1/status", "/", "/healthz")]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    texts = [*pages, out, err]
    assert f'account="{ALICE}"' in pages[0]
    for secret in found.secrets:
        assert [t[:200] for t in texts if secret in t] == []


def _get(url: str) -> str:
    try:
        return httpx.get(url, timeout=2).text
    except httpx.TransportError:
        return ""


# -- in-process daemon with a clock: cycles, restarts, cadence -----------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _cycles(path: Path, clock: Clock, steps: list[Callable[[], None]]) -> list[CycleResult]:
    """One daemon (one wiring, one store): before each cycle, run the step."""
    runtime = load_runtime(path, {**os.environ, "TELNYX_API_KEY": API_KEY})

    async def run() -> list[CycleResult]:
        with Store.open(path.parent / "state.db") as store:
            daemon = Daemon(build_wiring(runtime), store, clock=clock)
            out = []
            try:
                for step in steps:
                    step()
                    out.append(await daemon.cycle())
            finally:
                await daemon.aclose()
            return out

    logs.configure_logging(level="error")
    return asyncio.run(run())


def _later(clock: Clock, by: timedelta) -> Callable[[], None]:
    def step() -> None:
        clock.now += by

    return step


def _nothing() -> None:
    return None


def test_a_child_that_goes_away_is_reported_once(
    tmp_path: Path, served: tuple[SimServer, Reseller], receiver: Receiver
) -> None:
    server, found = served
    path = config(tmp_path, server.base_url, [receiver.url])
    clock = Clock()

    def remove_carol() -> None:
        found.manager.managed.remove(found.carol.id)
        clock.now += timedelta(minutes=11)  # past poll.slow_interval: listed again

    first = _cycles(path, clock, [_nothing, remove_carol, _later(clock, timedelta(minutes=11))])
    assert [r.source_errors for r in first] == [[], [], []]
    assert [CAROL in {c.account for c in r.collected} for r in first] == [True, False, False]
    assert receiver.titles.count(GONE_TITLE) == 1
    clock.now += timedelta(minutes=1)
    _cycles(path, clock, [_nothing, _later(clock, timedelta(minutes=11))])  # a restart
    assert receiver.titles.count(GONE_TITLE) == 1
    with Store.open(tmp_path / "state.db") as store:
        rows = {r.name: r for r in Discovered(store).rows()}
    assert rows[CAROL].gone_at == T0 + timedelta(minutes=11)
    assert [rows[n].gone_at for n in (ALICE, BOB)] == [None, None]
    assert (rows[BOB].shared, rows[ALICE].shared) == (True, False)


def test_the_listing_is_read_only_when_due(
    tmp_path: Path, served: tuple[SimServer, Reseller], receiver: Receiver
) -> None:
    server, found = served
    path = config(tmp_path, server.base_url, [receiver.url])
    clock = Clock()
    minute = _later(clock, timedelta(minutes=1))
    lists: list[int] = []

    def counted(step: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            lists.append(found.manager.request_count("/managed_accounts"))
            step()

        return run

    steps = [_nothing, minute, minute, _later(clock, timedelta(minutes=8)), minute]
    results = _cycles(path, clock, [counted(s) for s in steps])
    lists.append(found.manager.request_count("/managed_accounts"))
    # cycles at 0, 1, 2, 10, 11 min: listed at 0 and 10 (slow_interval 10m)
    assert lists == [0, 1, 1, 1, 2, 2]
    assert found.alice.account.request_count("/balance") == 5  # the children every cycle
    assert [len(r.collected) for r in results] == [4] * 5
    assert results[1].requests == 3  # main, alice, carol: /balance each; no listing
    _cycles(path, clock, [_nothing])  # a new process lists once: the keys are in memory only
    assert found.manager.request_count("/managed_accounts") == 3


async def test_the_listing_reads_every_page(tmp_path: Path) -> None:
    manager = SimAccount(api_key=API_KEY)
    children = [SimAccount(api_key=f"KEYchild-{i:02d}-0123456789") for i in range(5)]
    for i, child in enumerate(children):
        manager.managed.add(child, email=f"c{i}@example.com", rollup_billing=i == 0)
    with SimServer(manager, accounts=[manager, *children]) as server:
        async with TelnyxClient(base_url=server.base_url, api_key=SecretStr(API_KEY)) as client:
            items = await list_managed(client, page_size=2)
            one = await get_managed(client, items[-1].id)
    assert sorted(i.email or "" for i in items) == [f"c{i}@example.com" for i in range(5)]
    pages = [r.query.get("page[number]") for r in manager.requests if r.path == "/managed_accounts"]
    assert pages == ["1", "2", "3"]
    assert (one.email, one.rollup_billing) == ("c0@example.com", True)  # newest first
    assert one.api_key.get_secret_value() == children[0]._api_key
    assert children[0]._api_key not in repr(one)


TOPUP_CHILDREN = """\
rules:
  - name: child-critical
    kind: balance
    accounts: ["main/*"]
    below: {critical: 20}
    topup: true
"""
TOPUP_MAIN = ', topup: {enabled: true, amount: "100.00", max_per_day: "300.00"}'


def test_discovered_children_are_never_topped_up(
    tmp_path: Path, served: tuple[SimServer, Reseller], receiver: Receiver
) -> None:
    server, found = served
    # main (the parent) may pay; its children may not
    path = config(tmp_path, server.base_url, [receiver.url], TOPUP_CHILDREN, extra=TOPUP_MAIN)
    checked = run_cli("--config", str(path), "check")
    assert checked.returncode == 0, checked.stderr
    assert "discovered accounts of main are never topped up" in checked.stdout + checked.stderr
    done = run_cli("--config", str(path), "once")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(receiver.messages) >= 1)
    assert _firing(receiver) == [f"[CRITICAL] child-critical firing — {ALICE}"]
    posts = [a.request_count(method="POST") for a in (found.manager, found.alice.account)]
    assert posts == [0, 0]


def test_a_failed_listing_keeps_the_children_and_reports_nothing_gone(
    tmp_path: Path, served: tuple[SimServer, Reseller], receiver: Receiver
) -> None:
    server, found = served
    path = config(tmp_path, server.base_url, [receiver.url])
    clock = Clock()

    def listing_fails() -> None:
        found.manager.inject_fault("/managed_accounts", Fault.status(403), times=1)
        clock.now += timedelta(minutes=11)

    steps = [_nothing, listing_fails, _later(clock, timedelta(minutes=1))]
    results = _cycles(path, clock, steps)
    assert [len(r.collected) for r in results] == [4, 4, 4]  # the last listing's children
    assert found.manager.request_count("/managed_accounts") == 3  # tried again at once
    assert GONE_TITLE not in receiver.titles and not [t for t in receiver.titles if "gone" in t]
    errors = [[(a, str(s)) for a, s, _ in r.source_errors] for r in results]
    assert errors == [[], [("main", "discovery")], []]
    assert [t for t in receiver.titles if "watcher-source-down" in t] == [
        "[CRITICAL] watcher-source-down firing — main [api-key]",  # the 403: at once
        "[RESOLVED] watcher-source-down — main [api-key] (fired 1m)",  # listed again
    ]


def test_a_reload_lists_again_and_keeps_watching(
    tmp_path: Path, served: tuple[SimServer, Reseller], receiver: Receiver
) -> None:
    server, found = served
    path = config(tmp_path, server.base_url, [receiver.url])
    runtime = load_runtime(path, {**os.environ, "TELNYX_API_KEY": API_KEY})
    clock = Clock()

    async def run() -> list[CycleResult]:
        with Store.open(tmp_path / "state.db") as store:
            daemon = Daemon(build_wiring(runtime), store, clock=clock)
            try:
                first = await daemon.cycle()
                daemon.wiring = build_wiring(runtime)  # what a SIGHUP swaps in
                clock.now += timedelta(minutes=1)
                return [first, await daemon.cycle()]
            finally:
                await daemon.aclose()

    logs.configure_logging(level="error")
    results = asyncio.run(run())
    names = [[c.account for c in r.collected] for r in results]
    assert names == [["main", ALICE, BOB, CAROL]] * 2  # the parent, then its children
    assert found.manager.request_count("/managed_accounts") == 2
    assert [t for t in receiver.titles if "no longer listed" in t] == []


def test_a_child_that_could_not_be_read_is_read_again_next_cycle(
    tmp_path: Path, served: tuple[SimServer, Reseller], receiver: Receiver
) -> None:
    server, found = served
    path = config(tmp_path, server.base_url, [receiver.url])
    one = f"/managed_accounts/{found.alice.id}"
    found.manager.inject_fault(one, Fault.status(404), times=1)
    clock = Clock()
    results = _cycles(path, clock, [_nothing, _later(clock, timedelta(minutes=1)), _nothing])
    names = [[c.account for c in r.collected] for r in results]
    assert names == [["main", ALICE, BOB, CAROL]] * 3
    assert found.manager.request_count(one) == 2  # read again alone, then kept
    assert found.manager.request_count("/managed_accounts") == 1  # no new listing
    errors = [[(a, str(s)) for a, s, _ in r.source_errors] for r in results]
    assert errors == [[("main", "discovery"), (ALICE, "balance")], [], []]  # its key unknown
    assert [t for t in receiver.titles if "no longer listed" in t] == []


def test_once_watches_every_child_of_a_listing_longer_than_a_page(
    tmp_path: Path, receiver: Receiver
) -> None:
    manager = SimAccount(api_key=API_KEY)
    children = [SimAccount(api_key=f"KEYchild-{i:03d}-0123456789") for i in range(251)]
    for i, child in enumerate(children):
        manager.managed.add(child, email=f"c{i:03d}@example.com")
    with SimServer(manager, accounts=[manager, *children]) as server:
        path = config(tmp_path, server.base_url, [receiver.url])
        done = run_cli("--config", str(path), "once")
    assert done.returncode == 0, done.stderr
    pages = [r.query.get("page[number]") for r in manager.requests if r.path == "/managed_accounts"]
    assert pages == ["1", "2"]  # 250 a page
    assert done.stdout.count("account main/c") == 251
    assert all(c.request_count("/balance") == 1 for c in children)


def test_a_restart_whose_listing_fails_keeps_the_childrens_alerts(
    tmp_path: Path, served: tuple[SimServer, Reseller], receiver: Receiver
) -> None:
    server, found = served
    path = config(tmp_path, server.base_url, [receiver.url])
    clock = Clock()
    _cycles(path, clock, [_nothing])  # alice fires
    found.manager.inject_fault("/managed_accounts", Fault.status(404), times=1)
    clock.now += timedelta(minutes=1)
    results = _cycles(path, clock, [_nothing, _later(clock, timedelta(minutes=1))])  # restart
    assert [t for t in receiver.titles if ALICE in t] == [f"[WARNING] child-low firing — {ALICE}"]
    assert [str(s) for a, s, _ in results[0].source_errors if a == ALICE] == ["balance"]
    firing = [k.account for k, s in results[1].alerts.items() if s.fired_at is not None]
    assert firing == [ALICE]
