"""The systemd service protocol: `sd_notify` messages and the watchdog interval.

A hand-written sender (the `sdnotify` package encodes latin-1 and silently drops any
other text): one `AF_UNIX`/`SOCK_DGRAM` datagram per message to `$NOTIFY_SOCKET`, a
path or an abstract socket (`@name`), UTF-8. Without `NOTIFY_SOCKET` every call is a
no-op, so the daemon runs the same outside systemd. Sending never raises.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)

WATCHDOG_PINGS_PER_TIMEOUT = 3  # ping at a third of WATCHDOG_USEC: under half, with slack


class ServiceNotifier:
    """Sends `sd_notify` datagrams to the socket named by `NOTIFY_SOCKET`.

    In: the environment (default `os.environ`). `enabled` is False without a socket.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, **fields: str | int) -> bool:
        """Send one message of `KEY=value` lines (e.g. `send(READY=1, STATUS="ok")`).

        Newlines inside a value become spaces (a newline ends an assignment).
        Out: True when the datagram was sent, False when disabled or it failed.
        """
        if not self._address:
            return False
        lines = [f"{key}={_one_line(str(value))}" for key, value in fields.items()]
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto("\n".join(lines).encode("utf-8"), self._address)
        except OSError as exc:
            if not self._failed:  # say it once, not on every watchdog ping
                log.warning("systemd.notify_failed", error=str(exc), message=sorted(fields))
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """`READY=1` (and `STATUS=` when given): start-up or a reload is complete."""
        return self.send(READY=1) if status is None else self.send(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        """`STATUS=text`: the one-line summary `systemctl status` shows."""
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        """`WATCHDOG=1`: the loop is alive and no cycle has overrun its budget."""
        return self.send(WATCHDOG=1)

    def reloading(self) -> bool:
        """`RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC, µs) as systemd wants it."""
        return self.send(RELOADING=1, MONOTONIC_USEC=monotonic_usec())

    def stopping(self) -> bool:
        """`STOPPING=1`: shutdown has begun."""
        return self.send(STOPPING=1)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds (the clock systemd compares MONOTONIC_USEC with)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_timeout(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds of `$WATCHDOG_USEC`, or None when the watchdog is off for this process.

    Off when unset, not a positive integer, or `$WATCHDOG_PID` names another process.
    """
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def watchdog_period(environ: Mapping[str, str] | None = None) -> float | None:
    """How often to send `WATCHDOG=1` (a third of the timeout), or None when off."""
    timeout = watchdog_timeout(environ)
    return None if timeout is None else timeout / WATCHDOG_PINGS_PER_TIMEOUT


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())
