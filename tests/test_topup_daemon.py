"""Top-ups through the real daemon cycle against the loopback simulator: API outcomes,
dry runs, the kill switch, caps and balance verification (fake clock, real HTTP)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import API_KEY, cli_env, established_state
from structlog.testing import capture_logs
from topup_support import (
    FAILED,
    PAID,
    TOPUP,
    UNKNOWN,
    low_credit_rules,
    posts,
    topup_caps,
    write_topup_config,
)

from watcher.providers.telnyx.sim import Fault, SimServer, error_body
from watcher.service.cycle import Daemon
from watcher.service.wiring import build_wiring, load_runtime
from watcher.state.ledger import EntryState, Ledger, VerifyState
from watcher.state.store import Store

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

RULES = low_credit_rules(clear_above=120)
UNUSED = "json://127.0.0.1:9/unused"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def write(
    tmp_path: Path,
    sim: SimServer,
    *,
    enabled: bool = True,
    timeout: str = "2s",
    rules: str = RULES,
    **extra: str,
) -> Path:
    """This file's config: the simulator, caps of 300.00 a day (`enabled`, plus `extra`
    fields), a poll `timeout` and a route nobody listens on."""
    return write_topup_config(
        tmp_path,
        topup_caps(max_per_day="300.00", enabled=enabled, **extra),
        sim=sim,
        poll=f"{{interval: 10s, timeout: {timeout}}}",
        notify_url=UNUSED,
        rules=rules,
    )


@asynccontextmanager
async def running(config: Path, clock: Clock, *, dry_run: bool = False) -> AsyncIterator[Daemon]:
    runtime = load_runtime(config, cli_env())
    path = runtime.loaded.settings.state.resolve_state_path(os.environ, config.parent)
    store = Store.open(established_state(path))
    daemon = Daemon(
        build_wiring(runtime),
        store,
        clock=clock,
        dry_run=dry_run,
    )
    try:
        yield daemon
    finally:
        await daemon.aclose()
        store.close()


async def titles(daemon: Daemon) -> list[str]:
    report = await daemon.cycle()
    return [m.title for m in report.messages if "top-up" in m.title]


@pytest.mark.parametrize(
    ("fault", "state", "title", "in_body"),
    [
        pytest.param(None, EntryState.SUCCEEDED, PAID, "Transaction id: ", id="200"),
        pytest.param(
            Fault.status(
                422,
                body=error_body(
                    422,
                    code="10027",
                    detail='Amount must include dollars and cents (e.g. "120.00").',
                ),
            ),
            EntryState.FAILED,
            FAILED,
            "HTTP 422 (10027 Invalid parameter): Amount must include dollars and cents",
            id="422-10027",
        ),
        pytest.param(
            Fault.status(403, body=error_body(403, detail="No payment method on file.")),
            EntryState.FAILED,
            FAILED,
            "HTTP 403 (10010 Authorization failed): No payment method on file.",
            id="403-no-payment-method",
        ),
        pytest.param(
            Fault.status(500),
            EntryState.UNKNOWN,
            UNKNOWN,
            "HTTP 500 (10007 Unexpected error)",
            id="500",
        ),
        pytest.param(
            Fault.delay(3.0),
            EntryState.UNKNOWN,
            UNKNOWN,
            "timed out after 1s",
            id="timeout",
        ),
    ],
)
async def test_api_outcome_lands_in_the_ledger_and_a_message_with_one_post(
    tmp_path: Path,
    sim: SimServer,
    fault: Fault | None,
    state: EntryState,
    title: str,
    in_body: str,
) -> None:
    sim.account.set_balance("40.00")
    if fault is not None:
        sim.account.inject_fault(TOPUP, fault)
    clock = Clock()
    async with running(write(tmp_path, sim, timeout="1s"), clock) as daemon:
        with capture_logs() as logged:
            report = await daemon.cycle()
        entries = Ledger(daemon.store).entries()
        events = [e for e in logged if str(e["event"]).startswith("topup.")]
        assert [e["event"] for e in events] == ["topup.sending", f"topup.{state.value}"]
        assert events[1]["entry"] == entries[0].id
        assert API_KEY not in repr(logged)
        assert [e.state for e in entries] == [state]
        messages = [m for m in report.messages if "top-up" in m.title]
        assert [m.title for m in messages] == [title]
        body = messages[0].body
        assert in_body in body
        used = "0.00" if state is EntryState.FAILED else "100.00"  # a failure frees the cap
        assert f"Caps used: {used} of 300.00 USD in the last 24 h." in body
        if state is EntryState.SUCCEEDED:
            assert entries[0].transaction_id == sim.account.transactions[0]["id"]
            assert f"Transaction id: {entries[0].transaction_id}" in body
        assert posts(sim) == 1
        clock.advance(minutes=10)  # still critical (or back to 40): nothing is retried
        sim.account.set_balance("40.00")
        await daemon.cycle()
        assert posts(sim) == 1
    request = next(r for r in sim.account.requests if r.path == TOPUP)
    assert request.raw_path == "/v2/payment/stored_payment_transactions"
    assert request.body == b'{"amount":"100.00"}'


async def test_failed_topup_frees_the_cap_but_not_the_interval(
    tmp_path: Path, sim: SimServer
) -> None:
    sim.account.set_balance("40.00")
    sim.account.inject_fault(TOPUP, Fault.status(403))
    clock = Clock()
    async with running(write(tmp_path, sim), clock) as daemon:
        await daemon.cycle()
        clock.advance(minutes=59)
        await daemon.cycle()
        assert posts(sim) == 1, "min_interval counts from a failed POST too"
        clock.advance(minutes=1)
        assert await titles(daemon) == ["[INFO] top-up paid 100.00 USD — main"]
        assert posts(sim) == 2


async def test_dry_run_never_posts_and_says_what_it_would_have_paid(
    tmp_path: Path, sim: SimServer
) -> None:
    sim.account.set_balance("40.00")
    clock = Clock()
    seen: list[str] = []
    async with running(write(tmp_path, sim, enabled=False), clock) as daemon:
        for _ in range(6):  # 2.5 hours at 30 minutes a cycle: due at 0, 60 and 120
            seen += await titles(daemon)
            clock.advance(minutes=30)
        report_body = [e for e in Ledger(daemon.store).entries()]
    assert posts(sim) == 0
    assert sim.account.topups == []
    assert seen == ["[INFO] top-up dry run: would have paid 100.00 USD — main"] * 3
    assert [e.state for e in report_body] == [EntryState.DRY_RUN] * 3


async def test_dry_run_flag_never_pays_even_when_enabled(tmp_path: Path, sim: SimServer) -> None:
    sim.account.set_balance("40.00")
    async with running(write(tmp_path, sim, enabled=True), Clock(), dry_run=True) as daemon:
        report = await daemon.cycle()
    assert posts(sim) == 0
    bodies = [m.body for m in report.messages if "dry run" in m.title]
    assert len(bodies) == 1
    assert "Dry run: would have paid 100.00 USD" in bodies[0]


HIGH_BAR = """\
rules:
  - name: low-credit
    kind: balance
    below: {critical: 1000}
    topup: true
"""


async def test_daily_cap_refuses_once_per_episode(tmp_path: Path, sim: SimServer) -> None:
    sim.account.set_balance("40.00")  # still below 1000 after three top-ups
    clock = Clock()
    seen: list[str] = []
    async with running(write(tmp_path, sim, rules=HIGH_BAR), clock) as daemon:
        for _ in range(6):
            seen += await titles(daemon)
            clock.advance(hours=1)
        entries = Ledger(daemon.store).entries()
    assert posts(sim) == 3
    assert seen == [PAID] * 3 + ["[WARNING] top-up refused (max_per_day) 100.00 USD — main"]
    assert sum(e.amount for e in entries if e.state is EntryState.SUCCEEDED) == Decimal("300.00")


async def test_pause_refuses_then_resume_pays_from_the_next_cycle(
    tmp_path: Path, sim: SimServer
) -> None:
    sim.account.set_balance("40.00")
    clock = Clock()
    async with running(write(tmp_path, sim), clock) as daemon:
        ledger = Ledger(daemon.store)
        ledger.pause(by="alice", reason="card replaced", now=clock())
        assert await titles(daemon) == ["[WARNING] top-up refused (paused) 100.00 USD — main"]
        clock.advance(minutes=1)
        assert await titles(daemon) == []  # said once per episode
        ledger.resume()
        clock.advance(minutes=1)
        assert await titles(daemon) == ["[INFO] top-up paid 100.00 USD — main"]
    assert posts(sim) == 1


async def test_topup_that_shows_in_the_balance_is_verified(tmp_path: Path, sim: SimServer) -> None:
    sim.account.set_balance("40.00")
    clock = Clock()
    async with running(write(tmp_path, sim), clock) as daemon:
        await daemon.cycle()
        clock.advance(minutes=1)
        await daemon.cycle()  # the balance is 140.00 now
        clock.advance(minutes=30)
        assert await titles(daemon) == []
        [entry] = Ledger(daemon.store).entries()
    assert entry.verify_state is VerifyState.OK


async def test_topup_missing_from_the_balance_is_alerted_once(
    tmp_path: Path, sim: SimServer
) -> None:
    sim.account.set_balance("40.00")
    clock = Clock()
    async with running(write(tmp_path, sim, verify_within="5m"), clock) as daemon:
        await daemon.cycle()
        sim.account.set_balance("41.00")  # paid, but the balance does not show it
        clock.advance(minutes=2)
        assert await titles(daemon) == []
        clock.advance(minutes=4)
        seen = await titles(daemon)
        clock.advance(minutes=2)
        seen += await titles(daemon)
        [entry] = Ledger(daemon.store).entries()
    assert seen == ["[CRITICAL] top-up not reflected in balance 100.00 USD — main"]
    assert entry.verify_state is VerifyState.MISSING
    assert posts(sim) == 1


async def test_condition_gone_on_the_fresh_read_skips_the_topup(
    tmp_path: Path, sim: SimServer
) -> None:
    reads: list[datetime] = []

    def balance(now: datetime) -> Decimal:  # the cycle reads 40.00, the fresh read 200.00
        reads.append(now)
        return Decimal("40.00") if len(reads) == 1 else Decimal("200.00")

    sim.account.set_balance_script(balance)
    async with running(write(tmp_path, sim), Clock()) as daemon:
        assert await titles(daemon) == []
        assert len(reads) == 2
        assert Ledger(daemon.store).entries() == []
    assert posts(sim) == 0


async def test_topup_log_events_carry_the_amount_and_the_caps_used(
    tmp_path: Path, sim: SimServer
) -> None:
    sim.account.set_balance("40.00")
    clock = Clock()
    monthly = "1000.00"
    async with running(write(tmp_path, sim, enabled=False, max_per_month=monthly), clock) as daemon:
        with capture_logs() as logged:
            await daemon.cycle()
            clock.advance(hours=1)
            await daemon.cycle()
    events = [e for e in logged if e["event"] == "topup.dry_run"]
    caps = {"amount": "100.00", "max_per_day": "300.00", "max_per_month": "1000.00"}
    assert [{k: e[k] for k in [*caps, "used_24h", "used_30d"]} for e in events] == [
        {**caps, "used_24h": "0.00", "used_30d": "0.00"},
        {**caps, "used_24h": "100.00", "used_30d": "100.00"},
    ]
