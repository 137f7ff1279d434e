"""The providers there are, found by folder: each subpackage of `watcher.providers` with a
`provider.py` that defines `build` (a `Factory`) is the provider of that name (a shared
package such as `simkit` has none).

Adding a provider is a new folder `watcher/providers/<name>/` with its `provider.py`;
nothing here changes. Provider modules are imported when first asked for, so a command
that builds no provider loads none.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import watcher.providers
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
