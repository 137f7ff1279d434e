"""`demo --web`: the status page of the demo's daemon on 127.0.0.1, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from watcher.service.metrics import Metrics
from watcher.service.wiring import Runtime


def serve(runtime: Runtime, state_path: Path, stack: contextlib.ExitStack) -> Metrics:
    """Serve the page on a free loopback port, print its URL; out: the daemon's metrics."""
    from watcher.service.web import PageSource, web_server  # Jinja2 only for --web

    metrics = Metrics(interval=runtime.interval.total_seconds())
    source = PageSource(runtime.loaded.settings, runtime.rules, state_path)
    server = web_server(metrics, ("127.0.0.1", 0), lambda: source)
    server.start()
    stack.callback(server.stop)
    print(f"status page: http://127.0.0.1:{server.port}/ (Ctrl-C ends the demo)", flush=True)
    return metrics


def stop_on_signals(stop: asyncio.Event) -> None:
    """Ctrl-C (SIGINT) and SIGTERM end the demo cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
