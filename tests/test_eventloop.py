"""The daemon's event loop (watcher/service/eventloop.py): uvloop's unless
`WATCHER_EVENT_LOOP=asyncio`; `run` says which in its `daemon.started` line, and a cycle
reads the simulator through the lanes on either."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import uvloop
from conftest import REPO, Receiver, cli_env, wait_for, write_config

from watcher.providers.telnyx.sim import SimServer
from watcher.service import eventloop

RULES = "rules:\n  - {name: low-credit, kind: balance, below: {warning: 100}}\n"


@pytest.mark.parametrize(
    ("environ", "factory"),
    [
        ({}, uvloop.new_event_loop),
        ({"WATCHER_EVENT_LOOP": ""}, uvloop.new_event_loop),
        ({"WATCHER_EVENT_LOOP": "uvloop"}, uvloop.new_event_loop),
        ({"WATCHER_EVENT_LOOP": "asyncio"}, asyncio.new_event_loop),
        ({"WATCHER_EVENT_LOOP": " Asyncio "}, asyncio.new_event_loop),
    ],
)
def test_the_loop_is_uvloops_unless_asyncio_is_asked_for(
    environ: dict[str, str], factory: object
) -> None:
    assert eventloop.loop_factory(environ) is factory


def test_run_gives_the_result_on_the_chosen_loop() -> None:
    async def name() -> str:
        await asyncio.sleep(0)
        return eventloop.loop_name()

    assert eventloop.run(name()) == "uvloop"


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_the_daemon_runs_its_cycles_on_the_loop_it_names(
    tmp_path: Path, sim: SimServer, receiver: Receiver, loop: str
) -> None:
    config = write_config(
        tmp_path,
        sim.base_url,
        [receiver.url],
        RULES,
        interval="0.5s",
        timeout="0.5s",
        extra="log: {level: info, format: json}\n",
    )
    sim.account.set_balance("80.00")
    env = cli_env(WATCHER_ALLOW_FAST_POLL="1")
    if loop == "asyncio":
        env["WATCHER_EVENT_LOOP"] = "asyncio"
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: receiver.titles == ["[WARNING] low-credit firing — main"])
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    started = [e for e in events if e.get("event") == "daemon.started"]
    assert [e["loop"] for e in started] == [loop]
    finished = [e for e in events if e.get("event") == "cycle.finished"]
    assert finished and all(0 < e["cpu_s"] < 5 for e in finished)  # the cycle's CPU time
