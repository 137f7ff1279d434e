"""Command line: `account-watcher [--config PATH] COMMAND` (DESIGN §7).

Exit codes: 0 ok; 1 `check` found problems; 2 usage error, missing config file, invalid
config or unresolvable secret (`run`/`once`); 3 runtime failure (state unusable).
Errors are one sentence on stderr; results go to stdout.

A command's modules are imported once it is chosen, in `_dispatch`: the grammar
(watcher/cli/parser.py) loads none of them, and `check`, `status` or `schema` never load
what only `run` needs (issue 9: exec → READY=1, RSS).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import traceback
from argparse import Namespace
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from watcher.cli.exits import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, Exit
from watcher.cli.parser import build as _parser
from watcher.service import logs


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


def _dispatch(args: Namespace) -> int:
    if args.command == "demo":
        from watcher.cli.demo import run_demo

        return run_demo(speed=args.speed, web=args.web)
    if args.command == "schema":  # needs no config
        return _schema(status=args.status)
    if args.command == "test":  # needs no config
        from watcher.cli.ruletest import cmd_test

        return cmd_test(args.files, sys.stdout)
    return _with_config(args, _config_path(args))


def _schema(*, status: bool) -> int:
    if status:
        from watcher.service.webmodel import status_schema_text

        sys.stdout.write(status_schema_text())
    else:
        from watcher.config.schema import schema_text

        sys.stdout.write(schema_text())
    return EXIT_OK


def _config_path(args: Namespace) -> Path:
    from watcher.config.settings import default_config_path

    path: Path = args.config or default_config_path(os.environ)
    if not path.exists():
        raise Exit(EXIT_USAGE, f"config file {path} does not exist (use --config PATH)")
    return path


def _with_config(args: Namespace, path: Path) -> int:
    out = sys.stdout
    match args.command:
        case "check":
            from watcher.cli.check import cmd_check

            return cmd_check(path, out, sys.stderr)
        case "status":
            from watcher.cli.status import cmd_status

            return cmd_status(path, out, as_json=args.json)
        case "accounts":
            from watcher.cli.accounts import cmd_accounts

            return cmd_accounts(path, out, as_json=args.json)
        case "silence":
            from watcher.cli.status import cmd_silence

            return cmd_silence(path, args)
        case "ack":
            from watcher.cli.ack import cmd_ack

            return cmd_ack(path, args, out)
        case "topups":
            from watcher.cli.topups import cmd_topups

            return cmd_topups(path, args, out)
        case "digest":
            from watcher.cli.digest import cmd_digest

            return cmd_digest(path, args, out)
        case "state":
            from watcher.cli.statecmd import cmd_state

            return cmd_state(path, args, out)
    return _daemon_command(args, path)


def _daemon_command(args: Namespace, path: Path) -> int:
    if args.command == "run":
        return _run(path)
    from watcher.cli import daemon
    from watcher.service import eventloop

    match args.command:
        case "once":
            return eventloop.run(daemon.cmd_once(path, dry_run=args.dry_run))
        case "notify-test":
            return asyncio.run(daemon.cmd_notify_test(path, args.route))
    raise Exit(EXIT_USAGE, f"unknown command {args.command}")  # pragma: no cover


def _run(path: Path) -> int:
    """`run`: the check of its notification URLs starts (in a child process) as soon as
    the settings are read, and runs while the daemon's own modules load."""
    from watcher.cli.urlcheck import start

    with start(path) as urls:
        from watcher.cli import daemon
        from watcher.service import eventloop

        return eventloop.run(daemon.cmd_run(path, urls))
