"""Slow sources: read only when due, never on every cycle (DESIGN §2.1).

A slow source is due when it was never read, or when its cadence has passed since its
last read, whose time is the source's cursor in the state; so `run` and `once` alike
read it only when due (and on the very first cycle). The cadence is
`poll.slow_interval` (`ClientOptions.slow_interval`), at least `MIN_INTERVALS` for a
source the API asks to poll less often (invoices: hourly).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from watcher.core.model import SourceName
from watcher.providers.base import StateView

MIN_INTERVALS: Mapping[SourceName, timedelta] = {SourceName.INVOICES: timedelta(hours=1)}
"""Sources read at most this often, whatever `slow_interval` says."""


def cadence(source: SourceName, slow_interval: timedelta) -> timedelta:
    """How often `source` is read: `slow_interval`, at least its `MIN_INTERVALS` entry."""
    return max(slow_interval, MIN_INTERVALS.get(source, timedelta(0)))


def due(
    view: StateView, account: str, source: SourceName, now: datetime, slow_interval: timedelta
) -> bool:
    """True when `source` of `account` was never read or its cadence has passed since."""
    last = view.get_cursor(account, str(source))
    return last is None or now - last >= cadence(source, slow_interval)
