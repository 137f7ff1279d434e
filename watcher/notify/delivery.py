"""Notifier: fans rendered messages out to apprise URLs, route by route.

Each URL gets its own `apprise.Apprise` object, so one URL's result is known on its own
and a slow channel (e-mail throttling) never delays the others. apprise's status codes
become `Delivery` records here at the edge; nothing raises into the cycle.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog
from pydantic import SecretStr

from watcher.core import redact
from watcher.core.model import Severity
from watcher.core.render import Message
from watcher.notify import apprise_plugins

if TYPE_CHECKING:  # imported where a URL is first used: `status`, `schema`... need none
    import apprise

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


@dataclass(frozen=True, slots=True)
class Target:
    """One URL of one route: `url_id` is a digest of the URL (stable, not the secret)."""

    route: str
    url_id: str
    masked: str


@dataclass(slots=True)
class _Sender:
    masked: str
    apobj: apprise.Apprise | None  # None: a URL apprise rejected at its first use


def url_id(url: SecretStr) -> str:
    return hashlib.sha256(url.get_secret_value().encode()).hexdigest()[:16]


@contextlib.contextmanager
def quiet_apprise() -> Iterator[None]:
    """apprise logs a URL it cannot parse with parts of its password: keep that out."""
    logger = logging.getLogger("apprise")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def instantiate(url: str) -> Any:
    """apprise's plugin object for `url`, or None when apprise cannot use it."""
    with quiet_apprise():
        return apprise_plugins.instantiate(url)


def _sender(url: SecretStr) -> _Sender:
    import apprise

    apobj = apprise.Apprise()
    service = instantiate(url.get_secret_value())
    if service is None or not apobj.add(service):
        raise NotifyError("a notification URL is not understood by apprise (scheme or format)")
    service.request_rate_per_sec = 0  # our own URL object: no throttling between messages
    return _Sender(shown_url(service.url(privacy=True)), apobj)


def shown_url(private_url: str) -> str:
    """What logs and commands show of a URL: scheme and (apprise-masked) host only.

    apprise's privacy mask hides passwords and known token fields but keeps paths and
    queries (a `json://host/hook/TOKEN` keeps its token), so both are cut here.
    """
    parts = urlsplit(private_url)
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{rest}"


class Notifier:
    """Sends messages to named routes.

    In: routes (name → URLs as SecretStr, min_severity), the default route, a per-send
    timeout in seconds. Raises NotifyError at construction for a URL apprise rejects.
    With `checked` (the URLs passed `url_problems` already: `run`'s start-up), each
    URL's apprise object is built at its first use instead, so that a daemon which has
    sent nothing has not loaded apprise (nor `requests`): ~10 MiB and ~0.1 s of CPU.
    """

    def __init__(
        self,
        routes: Mapping[str, Route],
        *,
        default_route: str | None,
        timeout: float = 10.0,
        checked: bool = False,
    ) -> None:
        self.routes = dict(routes)
        self.default_route = default_route
        self.timeout = timeout
        self._urls = {(name, url_id(url)): url for name, r in self.routes.items() for url in r.urls}
        self._senders: dict[tuple[str, str], _Sender] = {}
        if not checked:
            for key in self._urls:
                self._senders[key] = _sender(self._urls[key])

    def _sender(self, key: tuple[str, str]) -> _Sender:
        sender = self._senders.get(key)
        if sender is None:
            url = self._urls[key]
            try:
                sender = _sender(url)
            except NotifyError:  # checked before: only if apprise changed its mind
                sender = _Sender(shown_url(url.get_secret_value()), None)
                log.error("notify.url_unusable", route=key[0], url=sender.masked)
            self._senders[key] = sender
        return sender

    def knows(self, route: str, target_id: str) -> bool:
        """True when the URL is (still) configured on the route."""
        return (route, target_id) in self._urls

    def targets(self, route: str) -> list[Target]:
        """The URLs of a route (empty for an unknown route)."""
        return [
            Target(name, uid, self._sender((name, uid)).masked)
            for name, uid in self._urls
            if name == route
        ]

    def routes_for(self, rule_routes: Sequence[str], severity: Severity) -> list[str]:
        """The routes a message goes to: the rule's, else the default; by min_severity."""
        names = list(rule_routes) or ([self.default_route] if self.default_route else [])
        return [n for n in names if n in self.routes and severity >= self.routes[n].min_severity]

    async def deliver(self, message: Message, route: str, target_id: str) -> Delivery:
        """Send one message to one URL of a route; never raises.

        A URL no longer configured (after a reload) is a failed delivery.
        """
        import apprise

        if (route, target_id) not in self._urls:
            return Delivery(route, "(no longer configured)", False, "URL no longer configured")
        sender = self._sender((route, target_id))
        if sender.apobj is None:
            return Delivery(route, sender.masked, False, "URL not understood by apprise")
        try:
            result = await sender.apobj.async_notify(
                body=message.body,
                title=message.title,
                notify_type=_notify_type(message),
                body_format=apprise.NotifyFormat.MARKDOWN,
                timeout=self.timeout,
            )
            ok = result.status == apprise.AppriseResultStatus.SUCCESS
            error = "" if ok else redact.scrub(_why(result))
        except Exception as exc:  # a broken plugin must not break the cycle
            ok, error = False, type(exc).__name__
        if ok:
            log.info("notify.delivered", route=route, url=sender.masked, title=message.title)
        else:
            log.warning(
                "notify.failed", route=route, url=sender.masked, error=error, title=message.title
            )
        return Delivery(route, sender.masked, ok, error)


def _why(result: Any) -> str:
    """The last warning apprise logged for a failed send, else its status name."""
    messages = [
        entry.message
        for service in result.results
        for entry in service.logs()
        if entry.level in ("WARNING", "ERROR")
    ]
    return str(messages[-1]) if messages else str(result.status.name).lower()


def _notify_type(message: Message) -> apprise.NotifyType:
    import apprise

    from watcher.core.lifecycle import Reason

    if message.reason is Reason.RESOLVED:
        return apprise.NotifyType.SUCCESS
    if message.severity >= Severity.CRITICAL:
        return apprise.NotifyType.FAILURE
    if message.severity >= Severity.WARNING:
        return apprise.NotifyType.WARNING
    return apprise.NotifyType.INFO
