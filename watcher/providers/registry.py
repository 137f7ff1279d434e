"""The providers there are, found by folder: each subpackage of `watcher.providers` with a
`provider.py` that defines `build` (a `Factory`) is the provider of that name (a shared
package such as `simkit` has none); its `capabilities.py` says what it offers.

Adding a provider is a new folder `watcher/providers/<name>/` with its `provider.py`;
nothing here changes. Provider modules are imported when first asked for, so a command
that builds no provider loads none.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
from pathlib import Path
from typing import Any

import watcher.providers
from watcher.core.capabilities import Capabilities
from watcher.providers.base import ClientOptions, Factory, Provider


@functools.cache
def names() -> tuple[str, ...]:
    """The provider names: the subpackages of `watcher.providers` with a `provider`
    module, sorted (nothing is imported to find them)."""
    found = pkgutil.iter_modules(watcher.providers.__path__)
    return tuple(sorted(info.name for info in found if info.ispkg and _has_provider(info)))


def _has_provider(info: pkgutil.ModuleInfo) -> bool:
    folder = Path(getattr(info.module_finder, "path", "")) / info.name
    return any(sub.name == "provider" for sub in pkgutil.iter_modules([str(folder)]))


def factory(name: str) -> Factory:
    """The `build` of provider `name`. Raises ValueError for an unknown provider."""
    if name not in names():
        raise ValueError(f"unknown provider {name!r} (known: {', '.join(names())})")
    module = importlib.import_module(f"watcher.providers.{name}.provider")
    built: Factory = module.build
    return built


def build(account: Any, secrets: Any, options: ClientOptions) -> Provider:
    """The provider of one entry of `accounts` (by its `provider`), with its client.

    In: the account entry, the runtime's `ResolvedSecrets`, the client options.
    Raises ValueError for an unknown provider.
    """
    return factory(account.provider)(account, secrets, options)


def provider_names(module: str) -> list[str]:
    """Names of the provider subpackages that have `module` (e.g. `capabilities`), sorted."""
    base = watcher.providers.__name__
    return sorted(
        info.name
        for info in pkgutil.iter_modules(watcher.providers.__path__)
        if info.ispkg and importlib.util.find_spec(f"{base}.{info.name}.{module}") is not None
    )


def capabilities() -> dict[str, Capabilities]:
    """Each provider's `CAPABILITIES` (its `capabilities` module), by provider name."""
    base = watcher.providers.__name__
    found: dict[str, Capabilities] = {}
    for name in provider_names("capabilities"):
        offer = importlib.import_module(f"{base}.{name}.capabilities").CAPABILITIES
        if isinstance(offer, Capabilities):
            found[name] = offer
    return found
