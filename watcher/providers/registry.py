"""The providers there are: every subpackage of `watcher.providers` that has the module in
question. Adding a provider is a new folder; nothing here names one.

A provider's folder has `provider.py` with `build` (a `Factory`: account entry, resolved
secrets, client options → `Provider`) and `capabilities.py` with `CAPABILITIES`; a shared
package such as `simkit` has neither. Provider modules are imported when first asked for,
so a command that builds no provider loads none. The folders are listed once per process
(a cycle asks for the capabilities every time: listing them cost ~1 ms of CPU a cycle).
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from typing import Any

import watcher.providers
from watcher.core.capabilities import Capabilities
from watcher.providers.base import ClientOptions, Factory, Provider


def provider_names(module: str) -> list[str]:
    """Names of the provider subpackages that have `module` (e.g. `capabilities`), sorted.

    Found by listing the folders (once per process), importing none: a shared package
    (`simkit`, with the simulators' HTTP server) would otherwise load at every start-up
    for nothing.
    """
    return list(_listed(module))


@functools.cache
def _listed(module: str) -> tuple[str, ...]:
    return tuple(
        sorted(
            info.name
            for info in pkgutil.iter_modules(watcher.providers.__path__)
            if info.ispkg and _has_module(info.name, module)
        )
    )


def _has_module(package: str, module: str) -> bool:
    folders = [os.path.join(base, package) for base in watcher.providers.__path__]
    return any(found.name == module for found in pkgutil.iter_modules(folders))


def capabilities() -> dict[str, Capabilities]:
    """Each provider's `CAPABILITIES` (its `capabilities` module), by provider name."""
    return dict(_capabilities())


@functools.cache
def _capabilities() -> dict[str, Capabilities]:
    base = watcher.providers.__name__
    found: dict[str, Capabilities] = {}
    for name in provider_names("capabilities"):
        offer = importlib.import_module(f"{base}.{name}.capabilities").CAPABILITIES
        if isinstance(offer, Capabilities):
            found[name] = offer
    return found


def names() -> list[str]:
    """The providers that can be built: those with a `provider` module, sorted."""
    return provider_names("provider")


def factory(name: str) -> Factory:
    """The `build` of provider `name`. Raises ValueError for a provider that has none."""
    if name not in names():
        raise ValueError(f"unknown provider {name!r} (known: {', '.join(names())})")
    module = importlib.import_module(f"{watcher.providers.__name__}.{name}.provider")
    built: Factory = module.build
    return built


def build(account: Any, secrets: Any, options: ClientOptions) -> Provider:
    """The provider of one entry of `accounts` (by its `provider`), with its client.

    In: the account entry, the runtime's `ResolvedSecrets`, the client options.
    Raises ValueError for a provider that cannot be built.
    """
    return factory(account.provider)(account, secrets, options)
