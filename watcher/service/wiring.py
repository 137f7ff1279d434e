"""Wiring: a loaded configuration (`Runtime`) and what is built from it for the daemon —
the notifier, one `Provider` per account, the decide policy — swapped whole on a reload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from watcher.config.rulecheck import validate
from watcher.config.ruleload import LoadedRules, load_rules
from watcher.config.settings import LoadedSettings, ResolvedSecrets, load_settings, resolve_secrets
from watcher.config.yamlfile import ConfigError
from watcher.core.decide import Policy, RouteSpec
from watcher.core.model import Severity
from watcher.core.rules import Rule
from watcher.notify.delivery import Notifier, Route
from watcher.providers import registry
from watcher.providers.base import ClientOptions, Provider
from watcher.providers.http import keepalive_expiry
from watcher.providers.pool import HostPools
from watcher.service import logs

log = structlog.get_logger(__name__)

OnRequest = Callable[[str, int | None], None]


@dataclass(frozen=True, slots=True)
class Runtime:
    """A loaded, validated configuration: settings, rules and resolved secrets."""

    loaded: LoadedSettings
    rules: list[Rule]
    secrets: ResolvedSecrets

    @property
    def interval(self) -> timedelta:
        return self.loaded.settings.poll.interval


def load_runtime(
    path: Path,
    environ: Mapping[str, str],
    *,
    allow_fast_poll: bool = False,
    loaded: LoadedSettings | None = None,
) -> Runtime:
    """Load config (unless given `loaded`, read from `path` already), rules and secrets.

    Raises ConfigError (all problems, `file:line:col: message`) or SecretError.
    """
    if loaded is None:
        loaded = load_settings(path, environ=environ, allow_fast_poll=allow_fast_poll)
    found: LoadedRules = load_rules(loaded.settings.rules, loaded.config_dir)
    errors, warnings = validate(loaded, found, datetime.now(UTC), registry.capabilities())
    if errors:
        raise ConfigError(errors)
    for warning in warnings:
        log.warning("config.warning", message=warning)
    secrets = resolve_secrets(loaded.settings, environ=environ, config_dir=loaded.config_dir)
    return Runtime(loaded, found.rules, secrets)


def register_secrets(secrets: ResolvedSecrets) -> None:
    """Make every resolved secret known to the log scrubber."""
    for key in secrets.api_keys.values():
        logs.register_secret(key.get_secret_value())
    for urls in secrets.route_urls.values():
        for url in urls:
            logs.register_url_secrets(url.get_secret_value())


def build_notifier(runtime: Runtime, *, checked: bool = False) -> Notifier:
    """The notifier of the configured routes. Raises NotifyError for an unusable URL;
    `checked`: the URLs passed `url_problems`, apprise loads at the first message."""
    notify = runtime.loaded.settings.notify
    routes = {
        name: Route(tuple(runtime.secrets.route_urls[name]), Severity.parse(route.min_severity))
        for name, route in notify.routes.items()
    }
    timeout = runtime.loaded.settings.poll.timeout.total_seconds()
    return Notifier(routes, default_route=notify.default_route, timeout=timeout, checked=checked)


def build_providers(
    runtime: Runtime, *, on_request: OnRequest | None = None
) -> dict[str, Provider]:
    """One provider per configured account, by name: each its own HTTP client, the
    clients of one host sharing its connection pool and its `poll.concurrency` bound."""
    poll = runtime.loaded.settings.poll
    options = ClientOptions(
        timeout=poll.timeout.total_seconds(),
        interval=runtime.interval,
        on_request=on_request,
        slow_interval=poll.slow_interval,
        pools=HostPools(limit=poll.concurrency, keepalive=keepalive_expiry(runtime.interval)),
    )
    buildable = registry.names()
    providers: dict[str, Provider] = {}
    for account in runtime.loaded.settings.accounts:
        if account.provider not in buildable:  # a provider whose folder has no provider.py
            log.warning("provider.not_wired", account=account.name, provider=account.provider)
            continue
        providers[account.name] = registry.build(account, runtime.secrets, options)
    return providers


def build_policy(runtime: Runtime) -> Policy:
    """What the decide step needs of the configuration (rules, repeats, routes)."""
    notify = runtime.loaded.settings.notify
    routes = {
        name: RouteSpec(Severity.parse(route.min_severity), tuple(route.mute))
        for name, route in notify.routes.items()
    }
    return Policy(
        rules=tuple(runtime.rules),
        repeat_interval=notify.repeat_interval,
        send_resolved=notify.send_resolved,
        routes=routes,
        default_route=notify.default_route,
    )


@dataclass(frozen=True, slots=True)
class Wiring:
    """What a reload swaps in one assignment: a runtime and the notifier, providers and
    decide policy built from it."""

    runtime: Runtime
    notifier: Notifier
    providers: Mapping[str, Provider]
    policy: Policy


def build_wiring(
    runtime: Runtime, *, on_request: OnRequest | None = None, urls_checked: bool = False
) -> Wiring:
    """Notifier, providers and policy for `runtime`. Raises NotifyError for an unusable
    URL (unless `urls_checked`: see `build_notifier`)."""
    notifier = build_notifier(runtime, checked=urls_checked)
    providers = build_providers(runtime, on_request=on_request)
    return Wiring(runtime, notifier, providers, build_policy(runtime))


async def close_providers(providers: Mapping[str, Provider]) -> None:
    """Close every provider's connections."""
    for provider in providers.values():
        await provider.aclose()
