"""`run`'s start-up check of the notification URLs, in a forked child process.

Checking a URL means asking apprise (`url_problems`): importing apprise and the plugin
of its scheme, which imports `requests` — ~0.1 s of CPU and ~10 MiB that a daemon with
nothing to send would otherwise carry for its whole life, paid before READY=1. The
child, forked as soon as `run` has read the settings (same settings, same environment,
so the same secrets), runs the very same check and hands back its error lines through
a pipe, while the daemon loads its own modules and builds its metrics and providers on
the other core. `run` waits for the verdict before it opens the state and long before
READY=1, so an unusable URL ends the start exactly as before (exit 2, the same lines).
apprise then loads in the daemon at its first message (watcher/notify/delivery.py,
`checked`).

Where forking is not safe or buys nothing — another thread is running (a fork copies
only the calling one, with whatever locks the others held), one CPU only (the child
would run instead of the daemon, not beside it, and a fork costs CPU of its own), apprise is loaded
already,
no `os.fork`, settings that do not load (`run` reports that itself) — or when the
child does not end cleanly, the check runs in this process.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import NoReturn

# Loaded before the fork: the daemon needs them too, the child should not load them again.
from watcher.cli.notify import url_problems
from watcher.config.settings import LoadedSettings, load_settings


def start(path: Path) -> UrlCheck:
    """Read the settings at `path` and start the check of their URLs."""
    try:
        loaded = load_settings(path, environ=os.environ)
    except Exception:  # `run` loads them again and says why, with its exit code
        return UrlCheck(None)
    return UrlCheck(loaded)


class UrlCheck:
    """The check of `loaded`'s URLs, started at construction; `errors()` waits for it.
    Use it as a context manager: leaving it reaps the child if nobody asked."""

    def __init__(self, loaded: LoadedSettings | None) -> None:
        self.loaded = loaded
        self._child: tuple[int, int] | None = None  # (pid, read end of the pipe)
        if loaded is not None and _may_fork():
            self._child = _fork(loaded)

    def errors(self, loaded: LoadedSettings) -> list[str]:
        """The error lines of `url_problems` (empty: every URL is usable); `loaded`:
        the settings to check here when the child could not (the same, if it was
        started with any)."""
        found = self._join() if self._child is not None else None
        return found if found is not None else _problems(loaded)

    def _join(self) -> list[str] | None:
        assert self._child is not None
        pid, read_end = self._child
        self._child = None
        with open(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            return None
        return [str(line) for line in json.loads(data)]

    def __enter__(self) -> UrlCheck:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._child is not None:
            self._join()


def _problems(loaded: LoadedSettings) -> list[str]:
    return url_problems(loaded, os.environ).errors


def _may_fork() -> bool:
    return (
        hasattr(os, "fork")
        and threading.active_count() == 1
        and "apprise" not in sys.modules
        and _usable_cpus() > 1
    )


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except OSError:  # a seccomp filter without it (the unit's @system-service has it)
        return 1


def _fork(loaded: LoadedSettings) -> tuple[int, int]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(loaded, write_end)
    os.close(write_end)
    return pid, read_end


def _child(loaded: LoadedSettings, write_end: int) -> NoReturn:
    """Check, write the error lines as JSON, and leave at once: no atexit handler, no
    flush of the buffers inherited from the parent, nothing of the parent's closed."""
    code = 1
    try:
        data = json.dumps(_problems(loaded)).encode()
        with open(write_end, "wb") as pipe:
            pipe.write(data)
        code = 0
    finally:
        os._exit(code)
