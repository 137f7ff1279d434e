"""Command line: `account-watcher [--config PATH] COMMAND` (DESIGN §7).

Exit codes: 0 ok; 1 `check` found problems; 2 usage error, missing config file, invalid
config or unresolvable secret (`run`/`once`); 3 runtime failure (state unusable).
Errors are one sentence on stderr; results go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

import structlog

from watcher.cli import ack as cli_ack
from watcher.cli import digest as cli_digest
from watcher.cli import leading, statecmd
from watcher.cli import notify as cli_notify
from watcher.cli import status as cli_status
from watcher.cli import topups as cli_topups
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
    state_problems,
    state_target,
)
from watcher.cli.summary import summarize
from watcher.config.rulecheck import validate
from watcher.config.ruleload import load_rules
from watcher.config.secrets import SecretError
from watcher.config.settings import (
    LoadedSettings,
    check_secrets,
    default_config_path,
    load_settings,
    resolve_route_secrets,
)
from watcher.config.yamlfile import ConfigError, load_yaml
from watcher.notify.delivery import NotifyError
from watcher.providers.registry import capabilities
from watcher.service import eventloop, logs
from watcher.service.cycle import Daemon
from watcher.service.sdnotify import ServiceNotifier, watchdog_period
from watcher.service.supervisor import Supervisor
from watcher.service.wiring import (
    Runtime,
    build_notifier,
    build_wiring,
    load_runtime,
    register_secrets,
)
from watcher.state import lock as statelock
from watcher.state.store import StateTarget, Store, describe_target

if TYPE_CHECKING:
    from watcher.service.metrics import Metrics

log = structlog.get_logger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="account-watcher",
        description="Keeps a Telnyx account healthy: polls, evaluates rules, alerts.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="config file (default: $WATCHER_CONFIG, else /etc/account-watcher/config.yaml)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="the daemon loop (systemd runs this)")
    once = sub.add_parser("once", help="one poll-evaluate-act cycle, then a summary")
    once.add_argument("--dry-run", action="store_true", help="never pay (top-ups)")
    sub.add_parser("check", help="validate config and every rule file")
    status = sub.add_parser("status", help="alerts, accounts, last poll per source, last cycle")
    status.add_argument("--json", action="store_true", help="as JSON (shape: README)")
    accounts = sub.add_parser("accounts", help="every watched account: balance, last poll")
    accounts.add_argument("--json", action="store_true", help="as JSON (shape: README)")
    schema = sub.add_parser("schema", help="print the JSON Schema of rule files (for editors)")
    schema.add_argument("--status", action="store_true", help="of /api/v1/status instead")
    rule_test = sub.add_parser("test", help="run rule unit tests (like promtool test rules)")
    rule_test.add_argument("files", nargs="+", type=Path, metavar="FILE", help="test files")
    demo = sub.add_parser("demo", help="run against a built-in simulated account")
    cli_notify.add_parsers(sub)
    cli_topups.add_parser(sub)
    cli_ack.add_parser(sub)
    cli_digest.add_parser(sub)
    statecmd.add_parser(sub)
    demo.add_argument("--speed", type=float, default=1.0, help=argparse.SUPPRESS)
    demo.add_argument("--web", action="store_true", help="also serve the status page")
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the console script and `python -m watcher`."""
    args = _parser().parse_args(argv)
    if args.command != "run":  # off while the modules loaded (watcher/__main__.py)
        gc.enable()
    # Until a command configures logging from the config: warnings only, on stderr, so
    # that results on stdout stay clean.
    logs.configure_logging(level="debug" if args.debug else "warning", fmt="auto")
    try:
        code = _dispatch(args)
    except Exit as exc:
        if str(exc):
            print(f"account-watcher: {exc}", file=sys.stderr)
        code = exc.code
    except KeyboardInterrupt:
        code = EXIT_OK
    except Exception as exc:  # last resort: one sentence, traceback only with --debug
        if args.debug:
            traceback.print_exc()
        message = logs.scrub(f"{type(exc).__name__}: {exc}")
        print(f"account-watcher: unexpected error: {message}", file=sys.stderr)
        code = EXIT_RUNTIME
    sys.exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from watcher.cli.demo import run_demo

        return run_demo(speed=args.speed, web=args.web)
    if args.command == "schema":  # needs no config
        from watcher.config.schema import schema_text
        from watcher.service.webmodel import status_schema_text

        sys.stdout.write(status_schema_text() if args.status else schema_text())
        return EXIT_OK
    if args.command == "test":  # needs no config
        from watcher.cli.ruletest import cmd_test

        return cmd_test(args.files, sys.stdout)
    path = args.config or default_config_path(os.environ)
    if not path.exists():
        raise Exit(EXIT_USAGE, f"config file {path} does not exist (use --config PATH)")
    match args.command:
        case "check":
            return cmd_check(path, sys.stdout, sys.stderr)
        case "status":
            return cli_status.cmd_status(path, sys.stdout, as_json=args.json)
        case "accounts":
            from watcher.cli.accounts import cmd_accounts

            return cmd_accounts(path, sys.stdout, as_json=args.json)
        case "ack":
            return cli_ack.cmd_ack(path, args, sys.stdout)
        case "once":
            return eventloop.run(cmd_once(path, dry_run=args.dry_run))
        case "silence":
            return cli_status.cmd_silence(path, args)
        case "notify-test":
            return asyncio.run(cmd_notify_test(path, args.route))
        case "run":
            return eventloop.run(cmd_run(path))
        case "topups":
            return cli_topups.cmd_topups(path, args, sys.stdout)
        case "digest":
            return cli_digest.cmd_digest(path, args, sys.stdout)
        case "state":
            return statecmd.cmd_state(path, args, sys.stdout)
    raise Exit(EXIT_USAGE, f"unknown command {args.command}")  # pragma: no cover


# ---------------------------------------------------------------------------- check


def cmd_check(path: Path, out: TextIO, err: TextIO) -> int:
    """Validate config and rules; every problem printed at once."""
    try:
        loaded = load_settings(path, environ=os.environ)
    except ConfigError as exc:
        # Every problem at once: the rule files are still checked on their own.
        for line in exc.errors + _rule_file_errors(path):
            print(line, file=err)
        return EXIT_INVALID
    found = load_rules(loaded.settings.rules, loaded.config_dir)
    errors, warnings = validate(loaded, found, datetime.now(UTC), capabilities(), for_check=True)
    urls = cli_notify.url_problems(loaded, os.environ)
    errors += urls.errors
    warnings += check_secrets(
        loaded.settings, environ=os.environ, config_dir=loaded.config_dir, routes=False
    )
    warnings += urls.warnings + cli_web.token_warnings(loaded)
    state_errors, state_warnings = state_problems(loaded)
    errors += state_errors
    warnings += state_warnings
    for line in warnings:
        print(f"warning: {line}", file=err)
    for line in errors:
        print(line, file=err)
    if errors:
        return EXIT_INVALID
    print(
        f"ok: {path}: {len(loaded.settings.accounts)} account(s), "
        f"{len(found.files)} rule file(s), {len(found.rules)} rule(s)",
        file=out,
    )
    return EXIT_OK


def _rule_file_errors(path: Path) -> list[str]:
    """Errors of the rule files an invalid config names (its `rules:` globs if readable,
    else the default)."""
    try:
        data = load_yaml(path).data
    except ConfigError:
        data = None
    patterns = data.get("rules") if isinstance(data, dict) else None
    if not (isinstance(patterns, list) and all(isinstance(p, str) for p in patterns)):
        patterns = ["rules/*.yaml"]
    return load_rules(patterns, path.parent).errors


# ---------------------------------------------------------------------------- run / once


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


def _runtime(path: Path) -> Runtime:
    try:
        return _load(path)
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


def _daemon(
    runtime: Runtime,
    store: Store,
    metrics: Metrics | None = None,
    *,
    dry_run: bool = False,
    owns_state: bool = True,
) -> Daemon:
    on_request = None if metrics is None else metrics.count_request
    try:
        wiring = build_wiring(runtime, on_request=on_request)
    except NotifyError as exc:
        raise Exit(EXIT_USAGE, str(exc)) from None
    return Daemon(wiring, store, metrics=metrics, dry_run=dry_run, owns_state=owns_state)


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
        daemon = _daemon(runtime, store, dry_run=dry_run, owns_state=owns)
        try:
            report = await daemon.cycle(flush_all=True)
        finally:
            await daemon.aclose()
    lines = summarize(report) + daemon.topups.not_owner_lines()
    if dry_run:
        lines.append("dry run: no money was moved")
    print("\n".join(lines))
    return EXIT_OK


async def cmd_run(path: Path) -> int:
    """The daemon loop until SIGTERM/SIGINT; the cycle in flight finishes, exit 0.

    Speaks systemd's notify protocol when $NOTIFY_SOCKET is set; SIGHUP reloads config
    and rules between cycles (an invalid set is logged and the running one kept).
    """
    runtime = _runtime(path)
    _configure_logs(runtime)
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
        metrics = cli_web.metrics_for(runtime)
        # PostgreSQL: any number of `run` share the state; the lease elects who acts
        leadership = None if isinstance(state, Path) else leading.elected(store, state)
        daemon = _daemon(runtime, store, metrics, owns_state=leadership is None)
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
        # collector was off until here (watcher/__main__.py).
        gc.freeze()
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
