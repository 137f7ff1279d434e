"""Logs as a service writes them: no secret on any line at debug level (tracebacks of a
failing request included), and journald priority prefixes (`<3>` on errors)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import apprise
import pytest
import structlog
from conftest import API_KEY, Receiver, cli_env, run_cli, write_config
from pydantic import SecretStr

from watcher.config.settings import ResolvedSecrets
from watcher.providers.telnyx.client import TelnyxClient, TelnyxError
from watcher.providers.telnyx.sim import Fault, SimServer
from watcher.service.logs import configure_logging, reset_logging
from watcher.service.wiring import register_secrets

PASSWORD = "hunter2-PASSWORD-77"
TOKEN = "Tok3nInThePathABCDEF"
QUERY_TOKEN = "qtok-0123456789abcdef"

LOW_CREDIT = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100}
"""


def _url(receiver: Receiver) -> str:
    return f"json://watcher:{PASSWORD}@127.0.0.1:{receiver.port}/hook/{TOKEN}?token={QUERY_TOKEN}"


def _secrets_absent(text: str) -> None:
    for secret in (API_KEY, PASSWORD, TOKEN, QUERY_TOKEN):
        assert secret not in text, secret


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    reset_logging()


async def test_failing_request_traceback_at_debug_has_no_secret(
    sim: SimServer, receiver: Receiver
) -> None:
    stream = io.StringIO()
    configure_logging(level="debug", fmt="json", stream=stream)
    url = _url(receiver)
    register_secrets(
        ResolvedSecrets(api_keys={"main": SecretStr(API_KEY)}, route_urls={"ops": [SecretStr(url)]})
    )
    log = structlog.get_logger("watcher.test")
    sim.account.inject_fault("/balance", Fault.status(500), times=-1)
    async with TelnyxClient(
        base_url=sim.base_url, api_key=SecretStr(API_KEY), max_attempts=2, max_wait=0.01
    ) as client:
        try:
            await client.get_balance()
        except TelnyxError:
            headers = {"Authorization": f"Bearer {API_KEY}"}  # a local: must not be shown
            log.exception("test.request_failed", headers=headers, url=url)
    receiver.status = 500
    sender = apprise.Apprise()
    sender.add(url)
    assert not await sender.async_notify(body="b", title="t")
    logging.getLogger("apprise").error("while sending to %s", url)

    output = stream.getvalue()
    _secrets_absent(output)
    lines = [json.loads(line) for line in output.splitlines()]
    events = [line["event"] for line in lines]
    assert "telnyx.request_failed" in events
    (failed,) = [line for line in lines if line["event"] == "test.request_failed"]
    assert failed["exception"][0]["exc_type"] == "TelnyxError"
    assert any(frame["name"] == "get_balance" for frame in failed["exception"][0]["frames"])
    assert any(line["logger"] == "apprise" and line["level"] == "debug" for line in lines)
    assert any(line["logger"] == "apprise" and line["level"] == "error" for line in lines)


def test_cli_debug_run_with_failures_leaks_no_secret(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sim.base_url, [_url(receiver)], LOW_CREDIT)
    sim.account.set_balance("50.00")
    sim.account.inject_fault("/balance", Fault.status(503), times=1)
    receiver.status = 500
    env = cli_env(WATCHER_LOG__LEVEL="debug", WATCHER_LOG__FORMAT="json")
    result = run_cli("--config", str(config), "once", env=env)
    assert result.returncode == 0, result.stderr
    _secrets_absent(result.stderr)  # the log lines
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    levels = {line["level"] for line in lines}
    assert {"debug", "warning"} <= levels
    assert any(line["event"] == "telnyx.request_failed" for line in lines)
    assert any(line["logger"] == "httpx" for line in lines)  # stdlib loggers included


@pytest.mark.parametrize(
    ("method", "prefix"),
    [("debug", "<7>"), ("info", "<6>"), ("warning", "<4>"), ("error", "<3>"), ("critical", "<2>")],
)
def test_journal_lines_carry_the_syslog_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, prefix: str
) -> None:
    path = tmp_path / "journal"
    with path.open("w") as stream:
        info = path.stat()
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        configure_logging(level="debug", fmt="auto", stream=stream)
        getattr(structlog.get_logger("watcher.test"), method)("test.event", n=1)
        logging.getLogger("apprise").error("stdlib error")
    first, second = path.read_text().splitlines()
    assert first.startswith(prefix + "{")
    assert json.loads(first.removeprefix(prefix))["event"] == "test.event"
    assert second.startswith("<3>{")


def test_no_prefix_when_stderr_is_not_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    path = tmp_path / "plain"
    with path.open("w") as stream:
        configure_logging(fmt="json", stream=stream)
        structlog.get_logger().error("test.event")
    assert path.read_text().startswith("{")
