"""Reading the secrets the configuration refers to: API keys and secrets, Vonage's top-up
`trx`, and notification URLs.

Every value read is registered with the log scrubber; messages name references, never
values. `watcher.config.settings` offers these per `Settings` (`resolve_secrets`,
`check_secrets`, `resolve_route_secrets`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from watcher.config.accounts import AccountConfig, VonageAccountConfig
from watcher.config.secrets import SecretError, SecretRef, parse_ref, resolve
from watcher.config.sections import RouteConfig
from watcher.core.redact import register_secret, register_url_secrets


@dataclass(frozen=True, slots=True)
class ResolvedSecrets:
    """Secrets read from the references in the settings; values only as `SecretStr`.

    - `api_keys`: per account, the Telnyx API key, or Vonage's API key (an identifier,
      possibly literal in the config).
    - `api_secrets`: per Vonage account, its API secret.
    - `topup_trx`: per Vonage account with `topup.enabled`, the auto-reload payment's
      transaction id.
    - `route_urls`: per route, its notification URLs (literal ones wrapped too).
    """

    api_keys: dict[str, SecretStr] = field(default_factory=dict)
    route_urls: dict[str, list[SecretStr]] = field(default_factory=dict)
    api_secrets: dict[str, SecretStr] = field(default_factory=dict)
    topup_trx: dict[str, SecretStr] = field(default_factory=dict)


def resolve_all(
    accounts: Sequence[AccountConfig],
    routes: Mapping[str, RouteConfig],
    *,
    environ: Mapping[str, str],
    config_dir: Path,
) -> tuple[ResolvedSecrets, list[str]]:
    """Read every secret of `accounts` and `routes`.

    Out: what could be read, and one sentence per reference that could not (each
    prefixed `account NAME: ` or `route NAME: `). Never raises for a missing secret.
    """
    resolved = ResolvedSecrets()
    errors: list[str] = []
    for account in accounts:
        errors += [
            f"account {account.name}: {e}" for e in _account(account, resolved, environ, config_dir)
        ]
    for route_name, route in routes.items():
        urls = []
        for url in route.urls:
            try:
                urls.append(resolve_route_url(url, environ=environ, config_dir=config_dir))
            except SecretError as exc:
                errors.extend(f"route {route_name}: {message}" for message in exc.errors)
        resolved.route_urls[route_name] = urls
    return resolved, errors


def _account(
    account: AccountConfig, into: ResolvedSecrets, environ: Mapping[str, str], base: Path
) -> list[str]:
    errors: list[str] = []

    def read(ref: SecretRef | str, target: dict[str, SecretStr], *, secret: bool = True) -> None:
        try:
            value = (
                SecretStr(ref)
                if isinstance(ref, str)
                else resolve(ref, environ=environ, base_dir=base)
            )
        except SecretError as exc:
            errors.extend(exc.errors)
            return
        if secret:
            register_secret(value.get_secret_value())
        target[account.name] = value

    if not isinstance(account, VonageAccountConfig):
        read(account.api_key, into.api_keys)
        return errors
    read(account.api_key, into.api_keys, secret=False)  # an identifier, in URL paths
    read(account.api_secret, into.api_secrets)
    if account.topup.enabled and account.topup.trx is not None:
        read(account.topup.trx, into.topup_trx)
    if account.name in into.api_keys and account.name in into.api_secrets:
        register_secret(
            basic_credentials(into.api_keys[account.name], into.api_secrets[account.name])
        )
    return errors


def basic_credentials(key: SecretStr, secret: SecretStr) -> str:
    """The HTTP Basic credentials `base64(key:secret)`, as they appear in a header."""
    pair = f"{key.get_secret_value()}:{secret.get_secret_value()}"
    return base64.b64encode(pair.encode()).decode("ascii")


def resolve_route_url(url: str, *, environ: Mapping[str, str], config_dir: Path) -> SecretStr:
    """One notification URL of a route: a literal as it is, a reference read.

    Out: the URL as `SecretStr`, registered with the log scrubber. Raises: `SecretError`.
    """
    ref = parse_ref(url)
    value = SecretStr(url) if ref is None else resolve(ref, environ=environ, base_dir=config_dir)
    register_url_secrets(value.get_secret_value())
    return value


def resolve_web_token(
    ref: SecretRef | None, *, environ: Mapping[str, str], config_dir: Path
) -> SecretStr | None:
    """`web.token` read (and registered with the log scrubber), or None when not set.

    Raises: `SecretError` naming the reference when it cannot be read.
    """
    if ref is None:
        return None
    value = resolve(ref, environ=environ, base_dir=config_dir)
    register_secret(value.get_secret_value())
    return value
