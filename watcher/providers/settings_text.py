"""The last read of a slow settings source, kept between reads as the source's resume text.

A settings source (Telnyx `auto_recharge_prefs`, Vonage `settings`) is read every
`poll.slow_interval`, but drift rules are judged every cycle: the flattened settings of
the last read are stored as JSON in the state (the source's resume text, written at the
cycle's commit with its cursor) and read back on the cycles in between and after a
restart. Money goes in as a decimal string and comes back as `Decimal`, by the field
types of the provider's `Capabilities.drift_fields`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

import structlog

log = structlog.get_logger(__name__)


def settings_text(settings: Mapping[str, object]) -> str:
    """The settings as stored: JSON, Decimal values as strings, keys sorted."""
    plain = {k: str(v) if isinstance(v, Decimal) else v for k, v in settings.items()}
    return json.dumps({"settings": plain}, sort_keys=True)


def parse_settings(text: str | None, types: Mapping[str, type]) -> dict[str, object] | None:
    """The settings stored as `text`, typed by `types`; None when never stored or when
    unreadable (then the source is read again at once, as if never read)."""
    if text is None:
        return None
    try:
        stored = json.loads(text)["settings"]
        return {name: _typed(stored[name], kind) for name, kind in types.items()}
    except (ValueError, KeyError, TypeError, InvalidOperation):
        log.warning("source.resume_unreadable", source="settings", resume=text[:100])
        return None


def _typed(value: object, kind: type) -> object:
    if value is None:
        return None
    if kind is Decimal:
        return Decimal(str(value))
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{value!r} is not a {kind.__name__}")
    return value
