"""`run` (the daemon loop, systemd's unit), `once` (one cycle and a summary) and
`notify-test`: the commands that load the config, the rules and the secrets, poll and
notify (DESIGN §7)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from watcher.cli import leading
from watcher.cli import notify as cli_notify
from watcher.cli import webserve as cli_web
from watcher.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_USAGE,
    Exit,
    invalid_config,
    open_state,
    settings,
    state_target,
)
from watcher.cli.summary import summarize
from watcher.config.secrets import SecretError
from watcher.config.settings import LoadedSettings, resolve_route_secrets
from watcher.config.yamlfile import ConfigError
from watcher.notify.delivery import NotifyError
from watcher.service import eventloop, logs
from watcher.service.cycle import Daemon
from watcher.service.sdnotify import ServiceNotifier, watchdog_period
from watcher.service.supervisor import Supervisor
from watcher.service.wiring import (
    Runtime,
    Wiring,
    build_notifier,
    build_wiring,
    close_providers,
    load_runtime,
    register_secrets,
)
from watcher.state import lock as statelock
from watcher.state.store import StateTarget, Store, describe_target

if TYPE_CHECKING:
    from watcher.cli.urlcheck import UrlCheck
    from watcher.service.metrics import Metrics

log = structlog.get_logger(__name__)

GC_THRESHOLD = 10_000
"""`run`'s first-generation threshold of the cyclic collector (Python's default: 700)."""


def _load(path: Path) -> Runtime:
    """Config, rules and secrets for `run`, `once` and each reload; a notification URL
    apprise cannot use is a `ConfigError` naming its route and reference."""
    runtime = load_runtime(path, os.environ)
    _usable_urls(runtime.loaded)
    return runtime


def _usable_urls(loaded: LoadedSettings) -> None:
    errors = cli_notify.url_problems(loaded, os.environ).errors
    if errors:
        raise ConfigError(errors)


def _runtime(path: Path, *, urls: UrlCheck | None = None) -> Runtime:
    """`_load`'s runtime, or with `urls` (`run`: checking them elsewhere) the runtime
    of the settings it read, not checked here."""
    try:
        if urls is None:
            return _load(path)
        return load_runtime(path, os.environ, loaded=urls.loaded)
    except ConfigError as exc:
        raise invalid_config(path, exc) from None
    except SecretError as exc:
        raise Exit(EXIT_USAGE, str(exc)) from None


def _configure_logs(runtime: Runtime) -> None:
    log_config = runtime.loaded.settings.log
    logs.configure_logging(level=log_config.level, fmt=log_config.format)
    register_secrets(runtime.secrets)


def _open_store(runtime: Runtime, target: StateTarget) -> Store:
    return open_state(runtime.loaded, target)


def _lock_state(
    runtime: Runtime,
) -> tuple[StateTarget, contextlib.AbstractContextManager[object], bool]:
    """The state, what holds it while the command runs, and whether this process owns
    it (may reconcile and pay, DESIGN §6.1).

    SQLite: the flock on `<state>.lock` (not owned when another process holds it; exit 3
    when the lock file cannot be opened). PostgreSQL: no flock; for now this process
    owns it unless the lease says otherwise (watcher/cli/leading.py: `run` is elected,
    `once` takes the lease for its cycle when nobody leads).
    """
    target = state_target(runtime.loaded)
    if not isinstance(target, Path):
        return target, contextlib.nullcontext(), True
    try:
        lock = statelock.acquire(target)
    except OSError as exc:
        raise Exit(EXIT_RUNTIME, f"cannot lock the state {target}: {exc.strerror or exc}") from None
    return target, lock or contextlib.nullcontext(), lock is not None


def _wiring(runtime: Runtime, metrics: Metrics | None, *, urls_checked: bool = False) -> Wiring:
    on_request = None if metrics is None else metrics.count_request
    try:
        return build_wiring(runtime, on_request=on_request, urls_checked=urls_checked)
    except NotifyError as exc:
        raise Exit(EXIT_USAGE, str(exc)) from None


async def cmd_once(path: Path, *, dry_run: bool) -> int:
    """One cycle, then the summary on stdout. Exit 0 even when a source failed.

    Top-ups only with the state lock: while another process (`run`) holds it, the cycle
    runs with top-ups off (no reconcile, no POST) and the summary says so.
    """
    runtime = _runtime(path)
    _configure_logs(runtime)
    target, lock, owns = _lock_state(runtime)
    with lock, _open_store(runtime, target) as store, contextlib.ExitStack() as stack:
        if isinstance(target, str):  # PostgreSQL: the owner is who holds the lease
            owns = stack.enter_context(leading.once_owner(store, target, runtime.interval))
        daemon = Daemon(_wiring(runtime, None), store, dry_run=dry_run, owns_state=owns)
        try:
            report = await daemon.cycle(flush_all=True)
        finally:
            await daemon.aclose()
    lines = summarize(report) + daemon.topups.not_owner_lines()
    if dry_run:
        lines.append("dry run: no money was moved")
    print("\n".join(lines))
    return EXIT_OK


async def cmd_run(path: Path, urls: UrlCheck) -> int:
    """The daemon loop until SIGTERM/SIGINT; the cycle in flight finishes, exit 0.

    Speaks systemd's notify protocol when $NOTIFY_SOCKET is set; SIGHUP reloads config
    and rules between cycles (an invalid set is logged and the running one kept).
    `urls`: the check of the notification URLs, running in a child process since the
    settings were read (watcher/cli/urlcheck.py); its verdict is awaited once the
    metrics and providers are built: an unusable URL ends the start before the state
    is opened.
    """
    runtime = _runtime(path, urls=urls)
    _configure_logs(runtime)
    metrics = cli_web.metrics_for(runtime)
    wiring = _wiring(runtime, metrics, urls_checked=True)
    errors = urls.errors(runtime.loaded)
    try:
        if errors:
            raise invalid_config(path, ConfigError(errors))
        return await _serve(path, wiring, metrics)
    except BaseException:  # before the daemon took the providers (closing is idempotent)
        await close_providers(wiring.providers)
        raise


async def _serve(path: Path, wiring: Wiring, metrics: Metrics | None) -> int:
    runtime = wiring.runtime
    stop, reload = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    state, lock, owns = _lock_state(runtime)  # the only process that may pay: until exit
    if not owns:
        where = describe_target(state)
        raise Exit(EXIT_RUNTIME, f"another account-watcher (run) is using {where}; stop it first")
    service = ServiceNotifier()
    with lock, _open_store(runtime, state) as store, contextlib.ExitStack() as stack:
        # PostgreSQL: any number of `run` share the state; the lease elects who acts
        leadership = None if isinstance(state, Path) else leading.elected(store, state)
        daemon = Daemon(wiring, store, metrics=metrics, owns_state=leadership is None)
        if metrics is not None:
            cli_web.serve(lambda: daemon.runtime, state, metrics, stack)
        log.info(
            "daemon.started",
            config=str(path),
            rules=len(runtime.rules),
            accounts=len(daemon.providers),
            loop=eventloop.loop_name(),
        )
        # What start-up built (modules, models, config) lives as long as the process:
        # out of the collector's sight, every later full collection is cheaper. The
        # collector was off until here (watcher/__main__.py). A steady cycle leaves no
        # cyclic garbage, but a cycle of many accounts keeps what it read until its
        # commit: at the default threshold (700) the collector ran ~100 passes over it
        # per cycle of 1,000 accounts, ~4% of the CPU (bench/scale.py).
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        gc.enable()
        try:
            await Supervisor(
                daemon,
                stop,
                reload=reload,
                loader=lambda: _load(path),
                service=service,
                watchdog=watchdog_period(),
                leadership=leadership,
            ).run()
        finally:
            await daemon.aclose()
    service.close()
    log.info("daemon.stopped")
    return EXIT_OK


async def cmd_notify_test(path: Path, route: str | None) -> int:
    """Send a test message to every URL (or one route's); exit 1 if any failed."""
    loaded = settings(path)
    try:
        secrets = resolve_route_secrets(
            loaded.settings, environ=os.environ, config_dir=loaded.config_dir
        )
    except SecretError as exc:
        raise Exit(EXIT_USAGE, str(exc)) from None
    try:
        _usable_urls(loaded)
    except ConfigError as exc:
        raise invalid_config(path, exc) from None
    runtime = Runtime(loaded, [], secrets)
    _configure_logs(runtime)
    routes = list(runtime.loaded.settings.notify.routes)
    if not routes:
        raise Exit(EXIT_INVALID, f"no notification route is configured in {path}")
    if route is not None:
        if route not in routes:
            raise Exit(EXIT_USAGE, f"route {route!r} is not defined (routes: {', '.join(routes)})")
        routes = [route]
    try:
        notifier = build_notifier(runtime)
    except NotifyError as exc:
        raise Exit(EXIT_USAGE, str(exc)) from None
    return await cli_notify.notify_test(notifier, routes, sys.stdout)
