"""The state on PostgreSQL through the real CLI: `state.url` (a secret reference) makes
`once`, `status`, `ack`, `silence` and `topups` keep their state there, and `check`
validates it; the password never appears in any output (DESIGN §3, §10)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from conftest import API_KEY, REPO, Receiver, cli_env, run_cli, wait_for, write_config

from watcher.providers.telnyx.sim import SimServer
from watcher.state.ledger import Ledger
from watcher.state.silences import Silences
from watcher.state.store import open_store

PASSWORD = "pw-s3cret-Zq9"  # the test server trusts 127.0.0.1: a password is not asked for
LOW = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100, critical: 50}
"""


def with_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{PASSWORD}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def pg_config(tmp_path: Path, base_url: str, urls: list[str], state: str) -> Path:
    config = write_config(tmp_path, base_url, urls, LOW)
    text = config.read_text()
    old = f"state:\n  path: {tmp_path / 'state.db'}\n"
    assert old in text
    config.write_text(text.replace(old, f"state:\n{state}"))
    return config


def cli(config: Path, *args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(WATCHER_DB_URL=url, USER="alice")
    env.pop("SUDO_USER", None)
    result = run_cli("--config", str(config), *args, env=env)
    output = result.stdout + result.stderr
    assert PASSWORD not in output and API_KEY not in output
    return result


def test_commands_keep_their_state_in_postgresql(
    tmp_path: Path, pg_url: str, sim: SimServer, receiver: Receiver
) -> None:
    url = with_password(pg_url)
    config = pg_config(tmp_path, sim.base_url, [receiver.url], "  url: env:WATCHER_DB_URL\n")
    assert cli(config, "status", url=url).stdout.startswith("no state yet at postgresql://")
    sim.account.set_balance("80.00")
    ran = cli(config, "once", url=url)
    assert ran.returncode == 0, ran.stderr
    assert receiver.titles == ["[WARNING] low-credit firing — main"]

    status = cli(config, "status", url=url)
    assert status.returncode == 0, status.stderr
    assert "low-credit" in status.stdout
    document = json.loads(cli(config, "status", "--json", url=url).stdout)
    port = urlsplit(pg_url).port
    assert document["state"] == f"postgresql://watcher@127.0.0.1:{port}/postgres"

    acked = cli(config, "ack", "low-credit", "--reason", "topping up by hand", url=url)
    assert acked.returncode == 0, acked.stderr
    silenced = cli(config, "silence", "add", "low-*", "--duration", "2h", "--reason", "w", url=url)
    assert silenced.returncode == 0, silenced.stderr
    paused = cli(config, "topups", "pause", "--reason", "card replaced", url=url)
    assert paused.returncode == 0, paused.stderr
    listed = cli(config, "topups", url=url)
    assert listed.returncode == 0 and "card replaced" in listed.stdout, listed.stderr
    accounts = cli(config, "accounts", url=url)
    assert accounts.returncode == 0 and "main" in accounts.stdout, accounts.stderr
    digest = cli(config, "digest", "--preview", url=url)
    assert digest.returncode == 0 and "main" in digest.stdout, digest.stderr

    with open_store(pg_url) as store:
        (alert,) = store.load_alerts().values()
        assert alert.key.rule == "low-credit"
        assert [s.reason for s in Silences(store).all()] == ["w"]
        pause = Ledger(store).paused()
        assert pause is not None and pause.paused_by == "alice"
        assert store.query("SELECT count(*) FROM acks")[0][0] == 1
    assert not list(tmp_path.glob("state.db*")), "no SQLite file beside a PostgreSQL state"


def test_check_validates_state_url(tmp_path: Path, pg_url: str) -> None:
    base, urls = "http://127.0.0.1:9/v2", ["json://127.0.0.1:9/"]
    both = pg_config(
        tmp_path, base, urls, f"  path: {tmp_path / 's.db'}\n  url: env:WATCHER_DB_URL\n"
    )
    result = cli(both, "check", url=pg_url)
    assert result.returncode == 1
    assert f"{both}:11:8: state.url: state.path and state.url are mutually exclusive" in (
        result.stderr
    )

    literal = pg_config(tmp_path, base, urls, f"  url: {with_password(pg_url)}\n")
    result = cli(literal, "check", url=pg_url)
    assert result.returncode == 1 and "a literal database URL is not allowed" in result.stderr

    ref = pg_config(tmp_path, base, urls, "  url: env:WATCHER_DB_URL\n")
    result = run_cli("--config", str(ref), "check", env=cli_env())  # the variable unset
    assert result.returncode == 0, result.stderr
    assert "warning: state.url: " in result.stderr and "WATCHER_DB_URL" in result.stderr

    for bad, problem in [
        (f"mysql://watcher:{PASSWORD}@127.0.0.1/db", "must start with postgresql://"),
        (f"postgresql://watcher:{PASSWORD}@/db", "names no host"),
        (f"postgresql://watcher:{PASSWORD}@127.0.0.1:5432", "names no database"),
    ]:
        result = cli(ref, "check", url=bad)
        assert result.returncode == 1, bad
        assert f"{ref}:10:8: state.url {problem}" in result.stderr, result.stderr
    once = cli(ref, "once", url=f"mysql://watcher:{PASSWORD}@127.0.0.1/db")  # one is enough
    assert once.returncode == 2 and "must start with postgresql://" in once.stderr


def test_an_unreachable_server_is_one_sentence_and_exit_3(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://watcher:{PASSWORD}@127.0.0.1:{port}/state?connect_timeout=2"
    config = pg_config(
        tmp_path, "http://127.0.0.1:9/v2", ["json://127.0.0.1:9/"], "  url: env:WATCHER_DB_URL\n"
    )
    for command in (["status"], ["once"]):
        result = cli(config, *command, url=url)
        assert result.returncode == 3, (command, result.stderr)
        (line,) = result.stderr.strip().splitlines()[-1:]
        assert f"state database postgresql://watcher@127.0.0.1:{port}/state is unusable" in line
        assert "Traceback" not in result.stderr


def test_without_psycopg_the_error_names_the_extra(tmp_path: Path, pg_url: str) -> None:
    fake = tmp_path / "nopsycopg" / "psycopg"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n"
    )
    config = pg_config(
        tmp_path, "http://127.0.0.1:9/v2", ["json://127.0.0.1:9/"], "  url: env:WATCHER_DB_URL\n"
    )
    env = cli_env(WATCHER_DB_URL=pg_url, PYTHONPATH=str(fake.parent))
    result = run_cli("--config", str(config), "status", env=env)
    assert result.returncode == 3
    assert "pip install 'account-watcher[postgresql]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_postgres_scheme_is_accepted_too(tmp_path: Path, pg_url: str) -> None:
    url = "postgres" + pg_url.removeprefix("postgresql")
    config = pg_config(
        tmp_path, "http://127.0.0.1:9/v2", ["json://127.0.0.1:9/"], "  url: env:WATCHER_DB_URL\n"
    )
    result = cli(config, "topups", "pause", "--reason", "r", url=url)
    assert result.returncode == 0, result.stderr


def test_run_and_its_status_page_keep_the_state_in_postgresql(
    tmp_path: Path, pg_url: str, sim: SimServer, receiver: Receiver
) -> None:
    url = with_password(pg_url)
    config = pg_config(tmp_path, sim.base_url, [receiver.url], "  url: env:WATCHER_DB_URL\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config.write_text(config.read_text() + f"web:\n  listen: 127.0.0.1:{port}\n")
    sim.account.set_balance("80.00")
    env = cli_env(WATCHER_DB_URL=url, WATCHER_ALLOW_FAST_POLL="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "run"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: receiver.titles == ["[WARNING] low-credit firing — main"])
        page = f"http://127.0.0.1:{port}/api/v1/status"  # read through the page's connection
        wait_for(lambda: '"low-credit"' in _text(page))
        assert PASSWORD not in _text(page)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert PASSWORD not in out + err
    with open_store(pg_url) as store:
        assert store.last_cycle() is not None
        assert [key.rule for key in store.load_alerts()] == ["low-credit"]
    assert not list(tmp_path.glob("state.db*")), "no flock file on PostgreSQL"


def _text(url: str) -> str:
    try:
        return httpx.get(url, timeout=5).text
    except httpx.TransportError:
        return ""  # not listening yet
