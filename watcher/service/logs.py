"""Logging: structlog for our events, stdlib loggers (httpx, apprise) through the same pipe.

JSON lines when not on a TTY (systemd), a readable console on a TTY. Tracebacks never
carry frame locals. Every rendered line passes `scrub_secrets`, which replaces each
value given to `register_secret` / `register_url_secrets` (the registry of
watcher/core/redact.py, re-exported here) with `***`.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import structlog
from structlog.types import Processor

from watcher.core.redact import MASK as MASK
from watcher.core.redact import MIN_SECRET_LENGTH as MIN_SECRET_LENGTH
from watcher.core.redact import register_secret as register_secret
from watcher.core.redact import register_url_secrets as register_url_secrets
from watcher.core.redact import scrub as scrub

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
