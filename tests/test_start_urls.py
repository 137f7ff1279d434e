"""`run` checks its notification URLs before READY=1 without loading apprise into the
daemon (issue 9: exec → READY=1, RSS): apprise and the plugin's `requests` load at the
first message, and a config with an unusable URL still never gets READY=1."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Receiver, cli_env, wait_for, write_config
from notify_socket import Listener, listening

from watcher.providers.telnyx.sim import SimServer

LOW = "rules:\n  - {name: low, kind: balance, below: {warning: 100}}\n"
PASSWORD = "hunter2-0123456789"

# The real entry point; at exit, whether this process (not a child) loaded them.
RUN = """
import atexit, os, sys
pid = os.getpid()
def loaded():
    if os.getpid() == pid:
        print("LOADED", *(m for m in ("apprise", "requests") if m in sys.modules), flush=True)
atexit.register(loaded)
sys.argv = ["account-watcher", *sys.argv[1:]]
from watcher.__main__ import main
main()
"""


@pytest.fixture
def listener() -> Iterator[Listener]:
    with listening() as state:
        yield state


def _start(config: Path, listener: Listener, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RUN, "--config", str(config), "run"],
        env=cli_env(NOTIFY_SOCKET=listener.path, WATCHER_ALLOW_FAST_POLL="1", **env),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return out, err


def test_a_quiet_daemon_never_loads_apprise(
    tmp_path: Path, sim: SimServer, listener: Listener
) -> None:
    config = write_config(tmp_path, sim.base_url, ["json://127.0.0.1:9/hook"], LOW)
    sim.account.set_balance("500.00")  # nothing fires: nothing is sent
    process = _start(config, listener)
    try:
        listener.wait(lambda: len(listener.with_field("STATUS")) >= 2)  # READY's + a cycle
    finally:
        out, _ = _stop(process)
    assert listener.with_field("READY", "1")
    assert out.split() == ["LOADED"]


def test_the_first_message_loads_apprise_and_is_delivered(
    tmp_path: Path, sim: SimServer, receiver: Receiver, listener: Listener
) -> None:
    config = write_config(tmp_path, sim.base_url, [receiver.url], LOW)
    sim.account.set_balance("10.00")
    process = _start(config, listener)
    try:
        wait_for(lambda: len(receiver.messages) == 1)
    finally:
        out, _ = _stop(process)
    assert out.split() == ["LOADED", "apprise", "requests"]
    assert "low" in receiver.titles[0]


@pytest.mark.parametrize(
    ("url", "env", "line"),
    [
        (
            f"foo://user:{PASSWORD}@host/x",
            {},
            "14:14: notify.routes.ops.urls[0]: apprise does not understand foo://host/…",
        ),
        (
            "env:HOOK_URL",
            {"HOOK_URL": f"foo://{PASSWORD}@h"},
            "14:14: notify.routes.ops.urls[0]: route ops: env:HOOK_URL does not hold a "
            "notification URL apprise understands",
        ),
    ],
)
def test_an_unusable_url_ends_the_start_before_ready(
    tmp_path: Path,
    sim: SimServer,
    listener: Listener,
    url: str,
    env: dict[str, str],
    line: str,
) -> None:
    config = write_config(tmp_path, sim.base_url, [url], LOW)
    process = _start(config, listener, **env)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert f"{config}:{line}" in err
    assert f"account-watcher: invalid configuration in {config}" in err
    assert PASSWORD not in out + err
    assert "Traceback" not in err
    assert listener.received == []  # no READY=1, no STATUS
    assert sim.account.request_count() == 0
    assert not (tmp_path / "state.db").exists()


CHECK = """
import os, sys, threading
from pathlib import Path
from watcher.cli import urlcheck
if sys.argv[2] == "thread":  # a fork would copy this thread's locks, not the thread
    release = threading.Event()
    threading.Thread(target=release.wait, daemon=True).start()
if sys.argv[2] == "one-cpu":  # the child would only take the daemon's turns
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
with urlcheck.start(Path(sys.argv[1])) as urls:
    assert urls.loaded is not None
    errors = urls.errors(urls.loaded)
print("apprise" in sys.modules)
print(*errors, sep="\\n")
"""


@pytest.mark.parametrize(
    ("mode", "here"), [("alone", "False"), ("thread", "True"), ("one-cpu", "True")]
)
def test_the_check_runs_in_a_child_unless_another_thread_or_one_cpu(
    tmp_path: Path, mode: str, here: str
) -> None:
    urls = ["json://127.0.0.1:9/hook", "foo://host/x", "env:HOOK_URL", "mailto://x"]
    config = write_config(tmp_path, "http://127.0.0.1:9/v2", urls, LOW)
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(config), mode],
        env=cli_env(HOOK_URL="bar://h/…"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    loaded, *errors = done.stdout.splitlines()
    assert loaded == here
    line = config.read_text().splitlines()[13]
    columns = [line.index(json.dumps(url)) + 1 for url in urls]
    at = [f"{config}:14:{c}: notify.routes.ops.urls[{i}]: " for i, c in enumerate(columns)]
    why = "(unknown scheme or missing parts; see the apprise wiki)"
    assert errors == [
        f"{at[1]}apprise does not understand foo://host/… {why}",
        f"{at[2]}route ops: env:HOOK_URL does not hold a notification URL apprise "
        f"understands {why}",
        f"{at[3]}apprise does not understand mailto://x {why}",
    ]
