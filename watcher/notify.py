"""Notifier: fans rendered messages out to apprise URLs, route by route.

Each URL gets its own `apprise.Apprise` object, so one URL's result is known on its own
and a slow channel (e-mail throttling) never delays the others. apprise's status codes
become `Delivery` records here at the edge; nothing raises into the cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import apprise
import structlog
from pydantic import SecretStr

from watcher.model import Severity
from watcher.render import Message

log = structlog.get_logger(__name__)


class NotifyError(Exception):
    """A notification URL that apprise cannot use. `permanent` failures are not retried."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Route:
    urls: tuple[SecretStr, ...]
    min_severity: Severity = Severity.INFO


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one message to one URL (`url` is masked by apprise)."""

    route: str
    url: str
    ok: bool
    error: str = ""


@dataclass(slots=True)
class _Target:
    masked: str
    apobj: apprise.Apprise


def _target(url: SecretStr) -> _Target:
    apobj = apprise.Apprise()
    service = apprise.Apprise.instantiate(url.get_secret_value())
    if service is None or not apobj.add(service):
        raise NotifyError("a notification URL is not understood by apprise (scheme or format)")
    service.request_rate_per_sec = 0  # our own URL object: no throttling between messages
    return _Target(service.url(privacy=True), apobj)  # type: ignore[no-untyped-call]


class Notifier:
    """Sends messages to named routes.

    In: routes (name → URLs as SecretStr, min_severity), the default route, a per-send
    timeout in seconds. Raises NotifyError at construction for a URL apprise rejects.
    """

    def __init__(
        self, routes: Mapping[str, Route], *, default_route: str | None, timeout: float = 10.0
    ) -> None:
        self.routes = dict(routes)
        self.default_route = default_route
        self.timeout = timeout
        self._targets = {name: [_target(u) for u in r.urls] for name, r in self.routes.items()}

    def routes_for(self, rule_routes: Sequence[str], severity: Severity) -> list[str]:
        """The routes a message goes to: the rule's, else the default; by min_severity."""
        names = list(rule_routes) or ([self.default_route] if self.default_route else [])
        return [n for n in names if n in self.routes and severity >= self.routes[n].min_severity]

    async def send(self, message: Message, route_names: Sequence[str]) -> list[Delivery]:
        """Deliver to every URL of the given routes concurrently; never raises."""
        jobs = [
            self._send_one(name, target, message)
            for name in route_names
            for target in self._targets.get(name, [])
        ]
        return list(await asyncio.gather(*jobs))

    async def _send_one(self, route: str, target: _Target, message: Message) -> Delivery:
        try:
            result = await target.apobj.async_notify(
                body=message.body,
                title=message.title,
                notify_type=_notify_type(message),
                timeout=self.timeout,
            )
            ok = result.status == apprise.AppriseResultStatus.SUCCESS
            error = "" if ok else result.status.name.lower()
        except Exception as exc:  # a broken plugin must not break the cycle
            ok, error = False, type(exc).__name__
        delivery = Delivery(route, target.masked, ok, error)
        if ok:
            log.info("notify.delivered", route=route, url=target.masked, title=message.title)
        else:
            log.error(
                "notify.failed", route=route, url=target.masked, error=error, title=message.title
            )
        return delivery


def _notify_type(message: Message) -> apprise.NotifyType:
    from watcher.lifecycle import Reason

    if message.reason is Reason.RESOLVED:
        return apprise.NotifyType.SUCCESS
    if message.severity >= Severity.CRITICAL:
        return apprise.NotifyType.FAILURE
    if message.severity >= Severity.WARNING:
        return apprise.NotifyType.WARNING
    return apprise.NotifyType.INFO
