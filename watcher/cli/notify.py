"""Commands about notifications: `silence add/list/expire`, `notify-test`, and the
outbox / silence lines of `status`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

from watcher.config.secrets import SecretError, parse_ref
from watcher.config.settings import LoadedSettings, resolve_route_url
from watcher.core.durations import format_duration, parse_duration
from watcher.core.lifecycle import Reason
from watcher.core.model import AlertState, Severity
from watcher.core.render import Message, when
from watcher.core.silences import Silence, silenced_by
from watcher.notify.delivery import Notifier, instantiate, shown_url
from watcher.notify.outbox import Outbox
from watcher.service import logs
from watcher.state.silences import Silences
from watcher.state.store import Store

MAX_LISTED = 20


def now_utc() -> datetime:
    return datetime.now(UTC)


def user() -> str:
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or getpass.getuser()


# ---------------------------------------------------------------------------- silences


def silence_line(s: Silence, now: datetime) -> str:
    scope = f"{s.rule_glob}" + (f" (account {s.account})" if s.account else "")
    if s.active(now):
        left = f"active, {format_duration(s.expires_at - now)} left (until {when(s.expires_at)})"
    else:
        left = f"ended {when(s.expires_at)}"
    return f"  #{s.id} {scope}: {left}; by {s.created_by}: {s.reason}"


def cmd_silence(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    """`silence add|list|expire`. Raises ValueError/KeyError for bad input (exit 2)."""
    silences = Silences(store)
    now = now_utc()
    if args.action == "add":
        duration = parse_duration(args.duration)
        s = silences.add(
            args.rule_glob,
            account=args.account,
            duration=duration,
            reason=args.reason,
            created_by=user(),
            now=now,
        )
        print(f"silence #{s.id} added:", file=out)
        print(silence_line(s, now), file=out)
    elif args.action == "expire":
        s = silences.expire(args.id, now)
        print(f"silence #{s.id} expired:", file=out)
        print(silence_line(s, now), file=out)
    else:
        listed = silences.all()
        print(f"silences: {len(listed)}", file=out)
        for s in listed:
            print(silence_line(s, now), file=out)
    return 0


# ---------------------------------------------------------------------------- status


def status_lines(store: Store, now: datetime, alerts: Iterable[AlertState]) -> list[str]:
    """Silenced alerts, active silences and undelivered notifications, for `status`."""
    silences = Silences(store)
    active = silences.active(now)
    lines = []
    silenced = [
        (state, s) for state in alerts if (s := silenced_by(state.key, active, now)) is not None
    ]
    if silenced:
        lines.append("silenced alerts (evaluated, not notified):")
        lines += [f"  {state.key}: by silence #{s.id}" for state, s in silenced]
    lines.append(f"active silences: {len(active)}")
    lines += [silence_line(s, now) for s in active]
    pending = Outbox(store).pending()
    lines.append(f"undelivered notifications: {len(pending)}")
    for item in pending[:MAX_LISTED]:
        error = f": {item.last_error}" if item.last_error else ""
        lines.append(
            f"  {when(item.created_at)} {item.message.title} → {item.route} {item.url_masked} "
            f"({item.attempts} attempts{error})"
        )
    if len(pending) > MAX_LISTED:
        lines.append(f"  … and {len(pending) - MAX_LISTED} more")
    return lines


# ---------------------------------------------------------------------------- notify-test


def test_message() -> Message:
    host = socket.gethostname()
    return Message(
        title=f"[TEST] account-watcher notify-test — {host}",
        body=(
            f"This is a test message from account-watcher on {host} at {when(now_utc())}. "
            "If you can read it, this channel receives alerts. Nothing needs to be done."
        ),
        severity=Severity.INFO,
        rule="notify-test",
        account="-",
        reason=Reason.FIRING,
    )


async def notify_test(notifier: Notifier, routes: list[str], out: TextIO) -> int:
    """Send the test message to every URL of `routes`; one line per URL. Out: exit code."""
    message = test_message()
    targets = [t for route in routes for t in notifier.targets(route)]
    results = await asyncio.gather(*(notifier.deliver(message, t.route, t.url_id) for t in targets))
    for target, result in zip(targets, results, strict=True):
        verdict = "delivered" if result.ok else f"FAILED: {logs.scrub(result.error)}"
        print(f"{target.route}: {target.masked}: {verdict}", file=out)
    failed = sum(1 for r in results if not r.ok)
    print(f"{len(results) - failed} delivered, {failed} failed", file=out)
    return 1 if failed else 0


# ---------------------------------------------------------------------------- check


@dataclass(frozen=True, slots=True)
class UrlProblems:
    """What `url_problems` found: errors (unusable URLs) and warnings (unset references,
    secrets written into the config), each one line."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def url_problems(loaded: LoadedSettings, environ: Mapping[str, str]) -> UrlProblems:
    """Every notification URL checked as apprise will use it, each at its config place.

    A literal URL must be one apprise understands, and one holding a password or token
    is a warning (move it into a credential). A reference is resolved and its value
    must be such a URL; an unresolvable one is a warning (CI has no credentials). Every
    line names the route and the reference, never a secret.
    Shared by `check` (errors exit 1) and by `run`, `once`, `notify-test` (exit 2).
    """
    found = UrlProblems()
    for name, route in loaded.settings.notify.routes.items():
        for index, url in enumerate(route.urls):
            where = f"{_url_place(loaded, name, index)}: notify.routes.{name}.urls[{index}]: "
            ref = parse_ref(url)
            if ref is None:
                _check_literal(url, where, name, found)
                continue
            try:
                value = resolve_route_url(url, environ=environ, config_dir=loaded.config_dir)
            except SecretError as exc:
                found.warnings.extend(f"route {name}: {message}" for message in exc.errors)
                continue
            if instantiate(value.get_secret_value()) is None:
                found.errors.append(
                    f"{where}route {name}: {ref} does not hold a notification URL apprise "
                    "understands (unknown scheme or missing parts; see the apprise wiki)"
                )
    return found


def _check_literal(url: str, where: str, route: str, found: UrlProblems) -> None:
    service = instantiate(url)
    if service is None:
        found.errors.append(
            f"{where}apprise does not understand {shown_url(url)} (unknown scheme or missing "
            "parts; see the apprise wiki)"
        )
        return
    kind = _secret_kind(url, service)
    if kind is not None:
        found.warnings.append(
            f"{where}this {url.partition('://')[0]}:// URL holds a {kind} in the config file; "
            f"move the whole URL into a credential (e.g. a file /etc/credstore/{route}_url "
            f"with LoadCredential={route}_url in the unit) and write credential:{route}_url "
            "here (or env:NAME, file:PATH)"
        )


def _secret_kind(url: str, service: Any) -> str | None:
    """`password` or `token` when a literal URL carries a secret apprise would mask."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        return "password"
    if service.url(privacy=True) != service.url(privacy=False):
        return "token"
    return None


def _url_place(loaded: LoadedSettings, route: str, index: int) -> str:
    if loaded.doc is None:
        return str(loaded.path)
    line, col = loaded.doc.locate(("notify", "routes", route, "urls", index))
    return f"{loaded.path}:{line}:{col}"
