"""Each command imports what it needs, when it needs it (issue 9's exec → READY=1 and
RSS targets): parsing the command line loads no command's modules, and the commands
that send nothing (`check`, `status`, `schema`) never load apprise's plugin set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cli_env, write_config

HEAVY = (
    "apprise",
    "requests",
    "starlette",
    "prometheus_client",
    "pydantic_settings",
    "watcher.config.settings",
    "watcher.service.cycle",
    "watcher.service.supervisor",
    "watcher.service.wiring",
    "watcher.state.store",
)

PARSE_ONLY = f"""
import sys
import watcher.cli.main as cli
for argv in (["run"], ["check"], ["status", "--json"], ["schema"], ["topups", "pause",
             "--reason", "x"], ["ack", "low", "--reason", "x"], ["state", "migrate", "--to",
             "env:X"], ["digest", "--preview"], ["silence", "list"], ["notify-test"]):
    cli._parser().parse_args(argv)
print(" ".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_parsing_the_command_line_loads_no_command() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PARSE_ONLY], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


COMMAND = """
import atexit, sys
def loaded():
    plugins = {m.split(".")[2] for m in sys.modules if m.startswith("apprise.plugins.")}
    print("POLLING", *(m for m in ("httpx", "watcher.service.cycle") if m in sys.modules))
    print("LOADED", "apprise" in sys.modules, "requests" in sys.modules, *sorted(plugins))
atexit.register(loaded)
sys.argv = ["account-watcher", *sys.argv[1:]]
from watcher.__main__ import main
main()
"""


def _loaded(argv: list[str], what: str = "LOADED") -> list[str]:
    """Whether the command loaded apprise and requests, then its apprise plugin modules
    (`what="POLLING"`: which of httpx and the cycle it loaded)."""
    done = subprocess.run(
        [sys.executable, "-c", COMMAND, *argv],
        env=cli_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    (line,) = [line.split() for line in done.stdout.splitlines() if line.startswith(what)]
    return line[1:]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        "http://127.0.0.1:9/v2",
        ["json://127.0.0.1:9/hook", "mailto://user:pw@127.0.0.1:9?to=a@example.com"],
        "rules:\n  - {name: low, kind: balance, below: 10}\n",
    )


def test_schema_and_status_load_no_apprise(config: Path) -> None:
    assert _loaded(["schema"]) == ["False", "False"]
    assert _loaded(["--config", str(config), "status"]) == ["False", "False"]


def test_check_loads_only_the_plugins_of_the_configured_schemes(config: Path) -> None:
    apprise_loaded, _, *plugins = _loaded(["--config", str(config), "check"])
    assert apprise_loaded == "True"
    assert plugins == ["base", "custom_json", "email"]  # of ~190


def test_status_loads_no_http_client_nor_cycle(config: Path) -> None:
    """`status` reads the state: it polls nothing and runs no cycle."""
    assert _loaded(["--config", str(config), "status"], "POLLING") == []
