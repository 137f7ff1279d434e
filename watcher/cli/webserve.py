"""Serving the web surface from `run` and `demo --web`: `/`, `/api/v1/*`, `/metrics` and
`/healthz` on `web.listen` (or its older spelling `metrics.listen`).

Jinja2 and the page's modules are imported only here, only when an address is set, so a
daemon without `web.listen` never loads them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from watcher.cli.common import EXIT_RUNTIME, EXIT_USAGE, Exit
from watcher.config.resolve import resolve_web_token
from watcher.config.secrets import SecretError
from watcher.config.settings import LoadedSettings
from watcher.service.wiring import Runtime
from watcher.state.store import StateTarget

if TYPE_CHECKING:
    from watcher.service.metrics import Metrics, MetricsServer


def token_warnings(loaded: LoadedSettings) -> list[str]:
    """`check`: a `web.token` reference that cannot be read now (a warning, like every
    unset secret, so that CI can check a config without its credentials)."""
    try:
        resolve_web_token(
            loaded.settings.web.token_ref(), environ=os.environ, config_dir=loaded.config_dir
        )
    except SecretError as exc:
        return [f"web.token: {message}" for message in exc.errors]
    return []


def metrics_for(runtime: Runtime) -> Metrics | None:
    """The daemon's metrics when a web address is configured, else None."""
    if runtime.loaded.settings.web_address() is None:
        return None
    from watcher.service.metrics import Metrics  # prometheus_client only when used

    return Metrics(interval=runtime.interval.total_seconds())


def serve(
    runtime_of: Callable[[], Runtime],
    state_path: StateTarget,
    metrics: Metrics,
    stack: contextlib.ExitStack,
) -> MetricsServer:
    """Start the web server on the configured address until `stack` closes.

    In: a callable giving the running runtime (a reload swaps it), the state database
    (the page opens it read-only), the daemon's metrics.
    Raises: `Exit` 2 for an unreadable `web.token`, 3 when the address cannot be bound.
    """
    from watcher.service.web import PageSource, web_server  # Jinja2 only when used

    runtime = runtime_of()
    settings = runtime.loaded.settings
    address = settings.web_address()
    assert address is not None, "serve() needs web.listen"
    try:
        token = resolve_web_token(
            settings.web.token_ref(), environ=os.environ, config_dir=runtime.loaded.config_dir
        )
    except SecretError as exc:
        raise Exit(EXIT_USAGE, f"web.token: {exc}") from None

    def source() -> PageSource:
        current = runtime_of()
        return PageSource(current.loaded.settings, current.rules, state_path)

    server = web_server(metrics, address, source, token=token)
    try:
        server.start()
    except OSError as exc:
        listen = f"{address[0]}:{address[1]}"
        raise Exit(
            EXIT_RUNTIME, f"cannot serve metrics on {listen} (nor the status page): {exc.strerror}"
        ) from None
    stack.callback(server.stop)
    return server
