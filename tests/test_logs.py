"""Logging: JSON or console lines, stdlib loggers in the same pipe, secrets scrubbed."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import structlog

from watcher.core.redact import register_secret, register_url_secrets, scrub
from watcher.service.logs import configure_logging, reset_logging

KEY = "KEYlogs0123456789abcdefSECRET"
KEY_WITH_SPECIALS = 'p@ss/wo"rd+99'


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    reset_logging()


def _fail_with_key_in_a_local() -> None:
    api_key = KEY
    headers = {"Authorization": f"Bearer {api_key}"}
    raise RuntimeError(f"request failed with headers {headers}")


def _log_everything(stream: io.StringIO) -> str:
    log = structlog.get_logger("watcher.test")
    log.debug("test.debug", api_key=KEY, nested={"headers": {"auth": f"Bearer {KEY}"}})
    try:
        _fail_with_key_in_a_local()
    except RuntimeError:
        log.exception("test.failed", url=f"https://api.example.com/?key={KEY}")
    logging.getLogger("httpx").warning(f"HTTP Request: GET /balance key={KEY}")
    logging.getLogger("apprise").error("sending with token %s failed", KEY)
    try:
        _fail_with_key_in_a_local()
    except RuntimeError:
        logging.getLogger("apprise").exception("apprise crashed")
    return stream.getvalue()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_registered_secret_never_appears(fmt: str) -> None:
    register_secret(KEY)
    stream = io.StringIO()
    configure_logging(level="debug", fmt=fmt, stream=stream)
    output = _log_everything(stream)
    assert KEY not in output
    assert output.count("***") >= 6
    for event in ("test.debug", "test.failed", "HTTP Request", "apprise crashed"):
        assert event in output
    assert "_fail_with_key_in_a_local" in output  # the traceback itself is there


def test_json_lines_shape_and_no_frame_locals() -> None:
    register_secret(KEY)
    stream = io.StringIO()
    configure_logging(level="debug", fmt="json", stream=stream)
    lines = [json.loads(line) for line in _log_everything(stream).splitlines()]
    assert [line["event"] for line in lines] == [
        "test.debug",
        "test.failed",
        "HTTP Request: GET /balance key=***",
        "sending with token *** failed",
        "apprise crashed",
    ]
    for line in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"])
    assert [line["level"] for line in lines] == ["debug", "error", "warning", "error", "error"]
    assert lines[0]["logger"] == "watcher.test"
    assert lines[2]["logger"] == "httpx"
    for failed in (lines[1], lines[4]):
        (exception,) = failed["exception"]
        assert exception["exc_type"] == "RuntimeError"
        assert exception["frames"]
        assert all("locals" not in frame or not frame["locals"] for frame in exception["frames"])


def test_console_format_is_readable_lines() -> None:
    stream = io.StringIO()
    configure_logging(level="info", fmt="console", stream=stream)
    structlog.get_logger("watcher.test").info("cycle.finished", sources=3)
    output = stream.getvalue()
    assert "cycle.finished" in output
    assert "sources=3" in output
    assert not output.lstrip().startswith("{")
    assert "\x1b[" not in output  # no colours on a non-TTY


def test_auto_format_is_json_when_not_a_tty() -> None:
    stream = io.StringIO()
    configure_logging(fmt="auto", stream=stream)
    structlog.get_logger().info("daemon.started", accounts=1)
    assert json.loads(stream.getvalue())["accounts"] == 1


@pytest.mark.parametrize(
    ("level", "emitted"),
    [
        ("debug", ["a.debug", "a.info", "a.warning", "httpx info"]),
        ("info", ["a.info", "a.warning"]),
        ("warning", ["a.warning"]),
        ("error", []),
    ],
)
def test_level_filters_ours_and_quiets_httpx(level: str, emitted: list[str]) -> None:
    stream = io.StringIO()
    configure_logging(level=level, fmt="json", stream=stream)
    log = structlog.get_logger("watcher.x")
    log.debug("a.debug")
    log.info("a.info")
    log.warning("a.warning")
    logging.getLogger("httpx").info("httpx info")
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == emitted


def test_reconfiguring_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="json", stream=first)
    configure_logging(fmt="json", stream=second)
    structlog.get_logger().warning("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_short_values_are_not_registered() -> None:
    register_secret("abc12")
    assert scrub("token abc12 here") == "token abc12 here"


def test_encoded_variants_are_scrubbed() -> None:
    register_secret(KEY_WITH_SPECIALS)
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    log = structlog.get_logger()
    log.warning("x", raw=KEY_WITH_SPECIALS, quoted=quote(KEY_WITH_SPECIALS, safe=""))
    output = stream.getvalue()
    assert KEY_WITH_SPECIALS not in output
    assert quote(KEY_WITH_SPECIALS, safe="") not in output
    assert 'p@ss/wo\\"rd+99' not in output  # the JSON-escaped form
    assert json.loads(output)["raw"] == "***"


@pytest.mark.parametrize(
    ("url", "secrets", "kept"),
    [
        (
            "slack://T1234ABCD/B5678EFGH/abcdefghijklmnop1234/#alerts",
            ["T1234ABCD", "B5678EFGH", "abcdefghijklmnop1234"],
            ["#alerts"],
        ),
        (
            "mailtos://alerts:Pa55w0rd!@smtp.example.com?to=ops@example.com",
            ["Pa55w0rd!"],
            ["smtp.example.com", "ops@example.com"],
        ),
        ("json://127.0.0.1:8080/hook?token=tok_0123456789", ["tok_0123456789"], ["/hook"]),
    ],
)
def test_url_secrets(url: str, secrets: list[str], kept: list[str]) -> None:
    register_url_secrets(url)
    text = " ".join(["sending to", url, "|", *secrets, "|", *kept])
    scrubbed = scrub(text)
    assert url not in scrubbed
    for secret in secrets:
        assert secret not in scrubbed
    for keep in kept:
        assert keep in scrubbed


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"level": "loud"}, "level"), ({"fmt": "xml"}, "format")]
)
def test_bad_level_or_format(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        configure_logging(stream=io.StringIO(), **kwargs)
