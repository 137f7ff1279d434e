"""Logging: structlog for our events, stdlib loggers (httpx, apprise) through the same pipe.

JSON lines when not on a TTY (systemd), a readable console on a TTY. Tracebacks never
carry frame locals. Every rendered line passes `scrub_secrets`, which replaces each
value given to `register_secret` / `register_url_secrets` with `***`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

import structlog
from structlog.types import Processor

MASK = "***"
MIN_SECRET_LENGTH = 6
_URL_TOKEN_LENGTH = 8
_SECRET_QUERY_KEYS = frozenset(
    {"token", "key", "apikey", "api_key", "secret", "password", "pass", "pw", "webhook"}
)
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS |= {"error": logging.ERROR, "critical": logging.CRITICAL}
_QUIET_LOGGERS = ("httpx", "httpcore")
_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Mask `value` (and its URL-quoted and JSON-escaped forms) in every log line from now on.

    In: a secret such as an API key. Values shorter than 6 characters are ignored (masking
    them would garble ordinary words). Out: nothing.
    """
    if len(value) < MIN_SECRET_LENGTH:
        return
    variants = {value, quote(value, safe=""), quote_plus(value), _json_escaped(value)}
    variants |= {unquote(value)}
    global _pattern
    with _lock:
        _secrets.update(v for v in variants if len(v) >= MIN_SECRET_LENGTH)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def register_url_secrets(url: str) -> None:
    """Mask a notification URL and the credentials inside it in every log line.

    In: an apprise URL such as `slack://T000/B000/XXXX` or
    `mailtos://user:pw@host?to=a@b`. Registers the whole URL, the password of its
    user-info, every path segment (and a dot-less host part, where apprise puts tokens)
    of at least 8 characters, and values of token-like query parameters.
    """
    register_secret(url)
    for token in _url_tokens(url):
        register_secret(token)


def _url_tokens(url: str) -> Iterator[str]:
    try:
        parts = urlsplit(url)
        password = parts.password
        host = parts.netloc.rpartition("@")[2].partition(":")[0]  # as written, not lowercased
    except ValueError:
        return
    if password:
        yield unquote(password)
    if len(host) >= _URL_TOKEN_LENGTH and "." not in host and host != "localhost":
        yield host
    for segment in parts.path.split("/"):
        if len(segment) >= _URL_TOKEN_LENGTH:
            yield unquote(segment)
    for key, value in parse_qsl(parts.query):
        if key.lower() in _SECRET_QUERY_KEYS:
            yield value


def _json_escaped(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def scrub(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    pattern = _pattern
    return pattern.sub(MASK, text) if pattern is not None else text


def scrub_secrets(_logger: Any, _method: str, rendered: Any) -> Any:
    """structlog processor placed after the renderer: scrubs the rendered line."""
    if isinstance(rendered, str):
        return scrub(rendered)
    if isinstance(rendered, bytes):
        return scrub(rendered.decode("utf-8", "replace"))
    return rendered


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """Renders through structlog; prefixes `<N>` syslog priorities for journald."""

    def __init__(self, *, journald: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        line = scrub(super().format(record))
        if not self.journald:
            return line
        return f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{line}"


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Our handler on the root logger; marked so that reconfiguring replaces only it."""


def configure_logging(
    *, level: str = "info", fmt: str = "auto", stream: TextIO | None = None
) -> None:
    """Set up structlog and stdlib logging for the whole process (callable again).

    In: `level` debug|info|warning|error; `fmt` json|console|auto (auto: JSON unless
    `stream` is a TTY); `stream` (default `sys.stderr`).
    Out: nothing. Installs one handler on the root logger (replacing a previous one
    installed here, leaving others alone); httpx/httpcore log at WARNING unless `level`
    is debug. Raises: `ValueError` for an unknown level or format.
    """
    out = sys.stderr if stream is None else stream
    numeric = _numeric_level(level)
    json_lines = _use_json(fmt, out)
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = _Handler(out)
    handler.setFormatter(
        _Formatter(
            journald=json_lines and _is_journal_stream(out),
            foreign_pre_chain=shared,
            processors=_render_processors(json_lines, colors=_is_tty(out)),
        )
    )
    _install(handler, numeric)


def _numeric_level(level: str) -> int:
    try:
        return _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; use debug, info, warning or error"
        ) from None


def _use_json(fmt: str, stream: TextIO) -> bool:
    if fmt not in {"auto", "json", "console"}:
        raise ValueError(f"unknown log format {fmt!r}; use auto, json or console")
    return fmt == "json" or (fmt == "auto" and not _is_tty(stream))


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _is_journal_stream(stream: TextIO) -> bool:
    """True when `stream` is the journald stream systemd connected ($JOURNAL_STREAM)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _render_processors(json_lines: bool, *, colors: bool) -> list[Processor]:
    if json_lines:
        tracebacks = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        exceptions: list[Processor] = [structlog.processors.ExceptionRenderer(tracebacks)]
        renderer: Processor = structlog.processors.JSONRenderer(default=_json_default)
    else:
        exceptions = []
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        )
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        *exceptions,
        renderer,
        scrub_secrets,
    ]


def _json_default(value: object) -> str:
    return str(value)


def _install(handler: logging.Handler, level: int) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet = logging.DEBUG if level <= logging.DEBUG else logging.WARNING
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


def reset_logging() -> None:
    """Undo `configure_logging`: remove its handler and restore structlog's defaults."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.setLevel(logging.WARNING)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.reset_defaults()
