"""The systemd protocol over a real AF_UNIX datagram socket: READY, STATUS, WATCHDOG
cadence, RELOADING/READY on SIGHUP (broken and fixed rule files), STOPPING on SIGTERM,
a hung cycle that stops the watchdog pings, and crashing cycles that stop them too."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, REPO, Receiver, cli_env, run_cli, wait_for, write_config
from notify_socket import Datagram, Listener, listening
from structlog.testing import capture_logs

from watcher.providers.telnyx.sim import Fault, SimServer
from watcher.service.cycle import CycleResult, Daemon
from watcher.service.metrics import Metrics, MetricsServer
from watcher.service.sdnotify import (
    ServiceNotifier,
    monotonic_usec,
    watchdog_period,
    watchdog_timeout,
)
from watcher.service.supervisor import MAX_CRASHED_CYCLES, Supervisor, status_line
from watcher.service.wiring import build_wiring, load_runtime
from watcher.state.store import Store

LOW_CREDIT = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100}
"""

BROKEN = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100}
  - name: very-low
    kind: balance
    below: {critical: plenty}
"""

FIXED = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100}
  - name: very-low
    kind: balance
    below: {critical: 90}
"""

STATUS_LINE = re.compile(
    r"\d+ firing, \d+ source errors?, last cycle \d+\.\d\ds, \d+ requests?(; .*)?"
)


@pytest.fixture
def listener() -> Iterator[Listener]:
    with listening() as state:
        yield state


# ---------------------------------------------------------------------------- the sender


def test_sender_writes_utf8_fields_to_a_path_socket(listener: Listener) -> None:
    notify = ServiceNotifier({"NOTIFY_SOCKET": listener.path})
    assert notify.enabled
    assert notify.ready(status="2 firing — 5 € left\nsecond line")
    assert notify.watchdog()
    assert notify.stopping()
    listener.wait(lambda: len(listener.received) == 3)
    first, second, third = (d.fields for d in listener.received)
    assert first == {"READY": "1", "STATUS": "2 firing — 5 € left second line"}
    assert second == {"WATCHDOG": "1"}
    assert third == {"STOPPING": "1"}
    notify.close()


def test_reloading_carries_monotonic_usec(listener: Listener) -> None:
    notify = ServiceNotifier({"NOTIFY_SOCKET": listener.path})
    before = monotonic_usec()
    notify.reloading()
    listener.wait(lambda: listener.received)
    fields = listener.received[0].fields
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= monotonic_usec()
    notify.close()


def test_sender_reaches_an_abstract_socket() -> None:
    name = f"account-watcher-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        notify = ServiceNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notify.status("ok ✓")
        assert sock.recv(1024).decode("utf-8") == "STATUS=ok ✓"
        notify.close()
    finally:
        sock.close()


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}])
def test_without_socket_everything_is_a_no_op(environ: dict[str, str]) -> None:
    notify = ServiceNotifier(environ)
    assert not notify.enabled
    assert not notify.ready()
    assert not notify.watchdog()


def test_a_missing_socket_never_raises(tmp_path: Path) -> None:
    notify = ServiceNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notify.enabled
    assert not notify.ready()
    assert not notify.status("still fine")


@pytest.mark.parametrize(
    ("environ", "timeout"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "400000"}, 0.4),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_timeout_from_environment(environ: dict[str, str], timeout: float | None) -> None:
    assert watchdog_timeout(environ) == timeout
    period = watchdog_period(environ)
    assert period == (None if timeout is None else pytest.approx(timeout / 3))


# ---------------------------------------------------------------------------- the daemon


def _start(config: Path, listener: Listener, **env: str) -> subprocess.Popen[str]:
    environ = cli_env(
        NOTIFY_SOCKET=listener.path,
        WATCHDOG_USEC="400000",
        WATCHER_ALLOW_FAST_POLL="1",
        **env,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        env=environ,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> tuple[int, list[dict[str, Any]]]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    assert API_KEY not in err
    return process.returncode, [json.loads(line) for line in err.splitlines() if line]


def test_ready_status_watchdog_and_stopping(
    tmp_path: Path, sim: SimServer, receiver: Receiver, listener: Listener
) -> None:
    config = write_config(
        tmp_path, sim.base_url, [receiver.url], LOW_CREDIT, interval="1s", timeout="1s"
    )
    process = _start(config, listener)
    try:
        listener.wait(lambda: len(listener.statuses()) >= 3)  # READY's + two cycles
        first = listener.received[0].fields
        assert first == {"READY": "1", "STATUS": "started, first cycle running"}
        cycle_statuses = listener.statuses()[1:]
        assert all(STATUS_LINE.fullmatch(s) for s in cycle_statuses), cycle_statuses
        assert cycle_statuses[0].startswith("0 firing, 0 source errors, last cycle ")

        start = listener.received[0].at
        wait_for(lambda: time.monotonic() - start > 2.5)
        pings = [d.at for d in listener.with_field("WATCHDOG", "1")]
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert pings[0] - start < 0.25
        assert len(pings) >= 10
        # pinged every WATCHDOG_USEC/2 = 0.2 s; systemd would act only after 0.4 s of silence
        assert max(gaps) < 0.4, gaps
        assert sorted(gaps)[len(gaps) // 2] <= 0.2
    finally:
        sent_term = time.monotonic()
        code, lines = _stop(process)
    assert code == 0
    stopping = listener.with_field("STOPPING", "1")
    assert len(stopping) == 1 and stopping[0].at >= sent_term
    events = [line["event"] for line in lines]
    assert events.index("daemon.ready") < events.index("cycle.finished")
    assert events[-2:] == ["daemon.stopping", "daemon.stopped"]


def test_sighup_keeps_running_set_on_errors_then_picks_up_fixed_rules(
    tmp_path: Path, sim: SimServer, receiver: Receiver, listener: Listener
) -> None:
    config = write_config(
        tmp_path, sim.base_url, [receiver.url], LOW_CREDIT, interval="1s", timeout="1s"
    )
    rule_file = tmp_path / "rules" / "rules.yaml"
    process = _start(config, listener)
    try:
        listener.wait(lambda: len(listener.statuses()) >= 2)

        rule_file.write_text(BROKEN)
        hup = time.monotonic()
        process.send_signal(signal.SIGHUP)
        listener.wait(lambda: [d for d in listener.after(hup) if "READY" in d.fields])
        reloading, ready = _reload_pair(listener, hup)
        assert abs(int(reloading.fields["MONOTONIC_USEC"]) - monotonic_usec()) < 10_000_000
        assert re.search(
            rf"; reload failed: \d+ errors?, keeping previous config; "
            rf"first: {re.escape(str(rule_file))}:7:\d+: ",
            ready.fields["STATUS"],
        )
        assert process.poll() is None

        sim.account.set_balance("80.00")  # the old rule still runs
        wait_for(lambda: receiver.titles == ["[WARNING] low-credit firing — main"])
        failed_status = listener.statuses()[-1]
        assert "reload failed" in failed_status  # kept in STATUS= until a good reload

        rule_file.write_text(FIXED)
        hup = time.monotonic()
        process.send_signal(signal.SIGHUP)
        listener.wait(lambda: [d for d in listener.after(hup) if "READY" in d.fields])
        _, ready = _reload_pair(listener, hup)
        assert "reload failed" not in ready.fields["STATUS"]
        wait_for(lambda: len(receiver.titles) == 2)
        assert receiver.titles[1] == "[CRITICAL] very-low firing — main"
        time.sleep(1.2)  # one more cycle: low-credit's state survived, no repeat
        assert len(receiver.titles) == 2
    finally:
        code, lines = _stop(process)
    assert code == 0
    (failed,) = [line for line in lines if line["event"] == "config.reload_failed"]
    assert failed["level"] == "error"
    assert failed["errors"]
    for error in failed["errors"]:
        assert re.match(rf"{re.escape(str(rule_file))}:7:\d+: ", error), error
    reloaded = [line for line in lines if line["event"] == "config.reloaded"]
    assert len(reloaded) == 1 and reloaded[0]["rules"] == 2


def _reload_pair(listener: Listener, since: float) -> tuple[Datagram, Datagram]:
    """The RELOADING=1 datagram after `since` and the READY=1 that follows it."""
    later = listener.after(since)
    index = next(i for i, d in enumerate(later) if d.fields.get("RELOADING") == "1")
    ready = next(d for d in later[index:] if d.fields.get("READY") == "1")
    return later[index], ready


# ---------------------------------------------------------------------------- a hung cycle


class HangingDaemon(Daemon):
    """The real daemon whose second cycle never finishes (a stuck await)."""

    cycles = 0

    async def cycle(self, *, flush_all: bool = False) -> CycleResult:
        self.cycles += 1
        if self.cycles >= 2:
            await asyncio.Event().wait()
        return await super().cycle(flush_all=flush_all)


async def test_a_hung_cycle_stops_the_watchdog_pings(
    tmp_path: Path, sim: SimServer, receiver: Receiver, listener: Listener
) -> None:
    config = write_config(
        tmp_path, sim.base_url, [receiver.url], LOW_CREDIT, interval="0.5s", timeout="0.5s"
    )
    runtime = load_runtime(config, {"TELNYX_API_KEY": API_KEY}, allow_fast_poll=True)
    service = ServiceNotifier({"NOTIFY_SOCKET": listener.path})
    stop = asyncio.Event()
    with Store.open(tmp_path / "state.db") as store:
        daemon = HangingDaemon(build_wiring(runtime), store)
        run = asyncio.create_task(Supervisor(daemon, stop, service=service, watchdog=0.1).run())
        while daemon.cycles < 2:
            await asyncio.sleep(0.02)
        hung_at = time.monotonic()
        await asyncio.sleep(1.5)  # three budgets
        stop.set()
        await asyncio.sleep(0.2)
        assert not run.done()  # the cycle in flight is awaited, not abandoned
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        await daemon.aclose()
    service.close()

    await asyncio.to_thread(listener.wait, lambda: listener.with_field("STOPPING"))
    pings = [d.at for d in listener.with_field("WATCHDOG", "1")]
    before = [t for t in pings if t < hung_at]
    during = [t for t in pings if t >= hung_at]
    assert len(before) >= 3  # pings flowed while the loop was healthy
    assert during and max(during) - hung_at < 0.5 + 0.05  # ... and stop with the budget
    statuses = listener.statuses()
    assert any("watchdog pings stopped" in s for s in statuses)
    stopping = listener.with_field("STOPPING", "1")
    assert stopping and stopping[0].at - hung_at >= 1.5  # sent at once, cycle still hung


# ---------------------------------------------------------------------------- crashing cycles

CRASH_TEXT = "boom with token KEY-secret-looking-text"


class CrashingDaemon(Daemon):
    """The real daemon whose first `crashes` cycles raise; it records what `/healthz`
    answered at the start of each later cycle."""

    crashes = MAX_CRASHED_CYCLES + 1
    cycles = 0
    healthz_url = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.healthz: list[int] = []

    async def cycle(self, *, flush_all: bool = False) -> CycleResult:
        self.cycles += 1
        if self.cycles <= self.crashes:
            raise RuntimeError(CRASH_TEXT)
        self.healthz.append(await asyncio.to_thread(_status_code, self.healthz_url))
        return await super().cycle(flush_all=flush_all)


def _status_code(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_crashing_cycles_stop_the_watchdog_pings_until_one_succeeds(
    tmp_path: Path, sim: SimServer, receiver: Receiver, listener: Listener
) -> None:
    config = write_config(
        tmp_path, sim.base_url, [receiver.url], LOW_CREDIT, interval="0.25s", timeout="0.25s"
    )
    runtime = load_runtime(config, {"TELNYX_API_KEY": API_KEY}, allow_fast_poll=True)
    service = ServiceNotifier({"NOTIFY_SOCKET": listener.path})
    metrics = Metrics(interval=0.25)
    server = MetricsServer(metrics, ("127.0.0.1", 0))
    server.start()
    stop = asyncio.Event()
    try:
        with Store.open(tmp_path / "state.db") as store, capture_logs() as logged:
            daemon = CrashingDaemon(build_wiring(runtime), store, metrics=metrics)
            daemon.healthz_url = f"http://127.0.0.1:{server.port}/healthz"
            run = asyncio.create_task(
                Supervisor(daemon, stop, service=service, watchdog=0.05).run()
            )
            while daemon.cycles < daemon.crashes + 2:  # two good cycles after the crashes
                await asyncio.sleep(0.02)
            stop.set()
            await asyncio.wait_for(run, timeout=5)
            await daemon.aclose()
    finally:
        server.stop()
        service.close()

    await asyncio.to_thread(listener.wait, lambda: listener.with_field("STOPPING"))
    statuses = listener.statuses()
    assert statuses[1:5] == [
        "last cycle crashed: RuntimeError",
        "last cycle crashed: RuntimeError",
        f"cycles failing: {MAX_CRASHED_CYCLES} in a row: RuntimeError",
        f"cycles failing: {MAX_CRASHED_CYCLES + 1} in a row: RuntimeError",
    ]
    assert STATUS_LINE.fullmatch(statuses[5]), statuses
    assert not any("boom" in str(d.fields) for d in listener.received)  # no exception text

    received = list(listener.received)
    failing = next(i for i, d in enumerate(received) if "failing" in d.fields.get("STATUS", ""))
    good = next(
        i
        for i, d in enumerate(received)
        if i > failing and "STATUS" in d.fields and STATUS_LINE.fullmatch(d.fields["STATUS"])
    )
    pings = [i for i, d in enumerate(received) if d.fields.get("WATCHDOG") == "1"]
    assert [i for i in pings if i < failing]  # pinged through the first crashes
    assert not [i for i in pings if failing < i < good]  # silent while cycles keep failing
    assert [i for i in pings if i > good]  # and back after a good cycle
    assert received[good].at - received[failing].at >= 0.4  # two slots without a ping

    assert daemon.healthz == [503, 200]  # no cycle finished in 3 intervals, then one did
    crashed = [e for e in logged if e["event"] == "cycle.crashed"]
    assert [(e["crashed_in_a_row"], e["pings_stopped"]) for e in crashed] == [
        (1, False),
        (2, False),
        (3, True),
        (4, True),
    ]
    assert all(e["log_level"] == "error" for e in crashed)


def test_status_line_counts() -> None:
    from datetime import UTC, datetime

    report = CycleResult(at=datetime.now(UTC), duration_s=0.123, requests=1)
    assert status_line(report) == "0 firing, 0 source errors, last cycle 0.12s, 1 request"


# ---------------------------------------------------------------------------- source health


@pytest.mark.parametrize(("after", "fires"), [("0s", True), ("2m", False), (None, False)])
def test_source_down_after_is_configurable(
    tmp_path: Path, sim: SimServer, receiver: Receiver, after: str | None, fires: bool
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW_CREDIT)
    sim.account.inject_fault("/balance", Fault.malformed(), times=-1)  # not retried: fast
    extra = {} if after is None else {"WATCHER_POLL__SOURCE_DOWN_AFTER": after}
    result = run_cli("--config", str(config), "once", env=cli_env(**extra))
    assert result.returncode == 0, result.stderr
    down = [t for t in receiver.titles if "watcher-source-down" in t]
    assert bool(down) is fires, receiver.titles
