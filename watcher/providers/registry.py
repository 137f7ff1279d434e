"""The providers there are: every subpackage of `watcher.providers` that has the module in
question. Adding a provider is a new folder; nothing here names one."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

import watcher.providers
from watcher.core.capabilities import Capabilities


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
