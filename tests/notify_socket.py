"""A real sd_notify receiver for tests: an AF_UNIX/SOCK_DGRAM socket bound under /tmp,
read by a thread that records every datagram with its arrival time."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from conftest import wait_for


@dataclass
class Datagram:
    at: float  # time.monotonic() when received
    fields: dict[str, str]


@dataclass
class Listener:
    """What arrived on the socket at `path` (the value for NOTIFY_SOCKET)."""

    path: str
    received: list[Datagram] = field(default_factory=list)

    def with_field(self, key: str, value: str | None = None) -> list[Datagram]:
        return [
            d
            for d in list(self.received)
            if key in d.fields and (value is None or d.fields[key] == value)
        ]

    def after(self, at: float) -> list[Datagram]:
        return [d for d in list(self.received) if d.at >= at]

    def statuses(self) -> list[str]:
        return [d.fields["STATUS"] for d in self.with_field("STATUS")]

    def wait(self, predicate: Callable[[], Any], timeout: float = 15.0) -> None:
        wait_for(predicate, timeout=timeout, interval=0.02)


def _parse(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode("utf-8").split("\n"))


@contextlib.contextmanager
def listening() -> Iterator[Listener]:
    """Bind a fresh socket (short path: AF_UNIX paths are limited to 108 bytes)."""
    directory = tempfile.mkdtemp(dir="/tmp")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.05)
    state = Listener(path)
    running = threading.Event()
    running.set()

    def receive() -> None:
        while running.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            state.received.append(Datagram(time.monotonic(), _parse(data)))

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        running.clear()
        thread.join(timeout=2)
        sock.close()
        os.unlink(path)
        os.rmdir(directory)
