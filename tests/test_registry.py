"""The provider registry: providers are found by folder, built through the protocol."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr

from watcher.config.settings import ResolvedSecrets, TelnyxAccountConfig
from watcher.providers import registry
from watcher.providers.base import ClientOptions


def test_every_provider_folder_is_a_provider() -> None:
    assert "telnyx" in registry.names()
    assert all(callable(registry.factory(name)) for name in registry.names())


def test_an_unknown_provider_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown provider 'nope' \(known: .*telnyx"):
        registry.factory("nope")


async def test_a_telnyx_account_is_built_through_the_protocol() -> None:
    key = SecretStr("KEY-0123456789abcdef")
    account = TelnyxAccountConfig(name="main", base_url="http://127.0.0.1:9/v2")
    secrets = ResolvedSecrets(api_keys={"main": key})
    seen: list[tuple[str, int | None]] = []
    options = ClientOptions(
        timeout=1.0, interval=timedelta(seconds=10), on_request=lambda e, s: seen.append((e, s))
    )
    provider = registry.build(account, secrets, options)
    try:
        assert (provider.account, provider.kind, provider.requests_sent) == ("main", "telnyx", 0)
        assert provider.redact(f"the key {key.get_secret_value()} leaked") == "the key *** leaked"
        assert key.get_secret_value() not in repr(provider)
    finally:
        await provider.aclose()
