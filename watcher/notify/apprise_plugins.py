"""apprise plugin objects without importing apprise's whole plugin set.

apprise maps a URL's scheme to its plugin by importing every plugin module (~190) the
first time it is asked: +250–380 ms and +15 MiB, paid before READY=1 and by `check`.
Here the plugin of a scheme is found by reading the plugin sources for a `protocol` /
`secure_protocol` literal that names it, in apprise's own order (directory order, the
first plugin class of a module, first module wins), and only that module is imported;
the object is then built as `Apprise.instantiate` builds it (parse_url, enabled checks,
a default asset, constructor errors mean None).

Everything else goes through `Apprise.instantiate`, so through the full set, as before:
a scheme no source names literally, a URL apprise only knows in its native form
(`https://discord.com/api/webhooks/…`), a parse result naming another scheme, and any
process where the full set is already loaded (e.g. custom `@notify` schemes).
"""

from __future__ import annotations

import importlib
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

# apprise's own module pattern in NotificationManager.load_modules
_MODULE = re.compile(r"^(?P<name>(?!base|_)[a-z0-9_]+)(\.py)?$", re.IGNORECASE)
_PROTOCOL = re.compile(
    r"^\s*(?:secure_)?protocol\s*=\s*(\([^)]*\)|\"[^\"\n]*\"|'[^'\n]*')", re.MULTILINE
)
_LITERAL = re.compile(r"\"([^\"\n]*)\"|'([^'\n]*)'")


def instantiate(url: str) -> Any:
    """apprise's plugin object for `url`, or None when apprise cannot use it."""
    import apprise
    from apprise.manager_plugins import NotificationManager
    from apprise.utils.parse import GET_SCHEMA_RE

    escaped = url.replace("/#", "/%23")  # as apprise's url_to_dict does
    match = GET_SCHEMA_RE.match(escaped)
    schema = match.group("schema").lower() if match is not None else ""
    loaded = bool(NotificationManager())  # type: ignore[no-untyped-call]  # the singleton
    plugin = plugin_for(schema) if schema and not loaded else None
    if plugin is None:
        return apprise.Apprise.instantiate(url)
    if not plugin.enabled:
        return None
    results = plugin.parse_url(escaped)
    if not results:
        return None
    if results.get("schema") != schema:
        return apprise.Apprise.instantiate(url)
    results["tag"] = set()
    results["asset"] = apprise.AppriseAsset()
    try:
        service = plugin(**results)
    except Exception:  # apprise: "Could not load … URL" → None
        return None
    return service if service.enabled else None


@cache
def plugin_for(schema: str) -> Any:
    """The plugin class apprise maps `schema` to, importing only its module; None when
    no plugin source names it literally (the caller then asks apprise itself)."""
    from apprise.manager_plugins import NotificationManager

    root = Path(NotificationManager.module_path)
    for entry in os.listdir(root):
        found = _MODULE.match(entry)
        if found is None or not _declares(root / entry, schema):
            continue
        name = f"{NotificationManager.module_name_prefix}.{found.group('name')}"
        try:
            module = importlib.import_module(name)
        except ImportError:
            return None
        plugin = _first_plugin(module, NotificationManager.module_filter_re)
        if plugin is not None and schema in plugin.schemas(plugin):
            return plugin
    return None


def _first_plugin(module: Any, name_filter: re.Pattern[str]) -> Any:
    """The class apprise takes from a plugin module: the first name (sorted, as dir()
    gives them) that matches its filter and has an `app_id`."""
    for attribute in dir(module):
        if name_filter.match(attribute):
            candidate = getattr(module, attribute)
            if hasattr(candidate, "app_id"):
                return candidate
    return None


def _declares(path: Path, schema: str) -> bool:
    """True when a plugin module (file, or package directory) assigns a `protocol` or
    `secure_protocol` literal that contains `schema`."""
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    quoted = (f'"{schema}"'.encode(), f"'{schema}'".encode())
    for file in files:
        try:
            data = file.read_bytes()
        except OSError:
            continue
        if not any(q in data for q in quoted):  # most files: no decoding, no regex
            continue
        text = data.decode("utf-8", "replace")
        for assigned in _PROTOCOL.finditer(text):
            literals = {a or b for a, b in _LITERAL.findall(assigned.group(1))}
            if schema in literals:
                return True
    return False
