"""The auto-recharge prefs (`GET /payment/auto_recharge_prefs`) as a slow source for drift
rules (`SourceName.SETTINGS`): read when due (`poll.slow_interval`, and at once when the
last read is not kept), flattened to the drift fields (`auto_recharge.enabled`, ...); the
last read is kept as the source's resume text (`watcher.providers.settings_text`) so
drift is judged on every cycle in between and after a restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from watcher.core.model import SourceName
from watcher.providers import slow
from watcher.providers.base import StateView
from watcher.providers.settings_text import parse_settings
from watcher.providers.telnyx.capabilities import CAPABILITIES
from watcher.providers.telnyx.wire import AutoRechargePrefs

SOURCE = SourceName.SETTINGS


def due(view: StateView, account: str, now: datetime, slow_interval: timedelta) -> bool:
    """True when the prefs of `account` are to be read this cycle."""
    return kept(view, account) is None or slow.due(view, account, SOURCE, now, slow_interval)


def kept(view: StateView, account: str) -> dict[str, object] | None:
    """The flattened prefs of the last read; None when never read (or unreadable)."""
    return parse_settings(view.get_resume(account, str(SOURCE)), CAPABILITIES.drift_fields)


def flattened(prefs: AutoRechargePrefs) -> dict[str, object]:
    """The prefs as drift fields (`auto_recharge.enabled`, ...; money as Decimal)."""
    return {
        "auto_recharge.enabled": prefs.enabled,
        "auto_recharge.threshold_amount": prefs.threshold_amount,
        "auto_recharge.recharge_amount": prefs.recharge_amount,
        "auto_recharge.preference": prefs.preference,
    }
