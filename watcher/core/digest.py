"""The daily digest's schedule and inputs (DESIGN §12). Pure: time is a parameter.

- `parse_at("08:00 Europe/Berlin")` → `DigestTime` (the zone is optional: UTC).
- `due(at, now, last_day)` → `Due`: which local day's digest is due now, or why none is
  (`Verdict.SEND`, `NOT_YET`, `SENT`, `SKIP` when it is `CATCH_UP_LIMIT` or more late).
- `happenings(transitions, kinds)`: what the cycle's transitions add to the alert history
  the digest reads (fired, escalated, resolved, one-shot events).
- `AccountDay`: everything the digest says about one account, read from the state by
  `watcher.notify.digest`; the text is `watcher.core.digest_text`.

Daylight saving time: `at` is a wall-clock time in its zone. A time that does not exist
on a spring-forward day (02:30 in Europe/Berlin) happens one hour later by the clock
(03:30 CEST, the same instant as 02:30 CET); on a fall-back day a time that occurs twice
happens at its first occurrence. Each local day has exactly one digest.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watcher.core import spend_figures
from watcher.core.durations import format_duration
from watcher.core.holds import Hold
from watcher.core.ledger_types import Entry
from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import AlertKey, AlertState, Severity

DIGEST_RULE = "watcher-digest"
"""The `rule` of digest messages in the outbox and logs (a built-in name)."""
CATCH_UP_LIMIT = timedelta(hours=12)
"""A digest more late than this (the daemon was down) is skipped, not sent."""
WINDOW = timedelta(hours=24)
"""What a digest covers: the 24 hours before it is made."""
RUNWAY_LOOKBACK = timedelta(hours=6)
"""The runway line's burn rate is the spend of this much of the balance samples."""
MAX_PER_ACCOUNT_MESSAGES = 10
"""Up to this many accounts get one message each; more get one message per route."""
RECORDED = frozenset({Reason.FIRING, Reason.ESCALATED, Reason.RESOLVED, Reason.EVENTS})
"""The transitions the alert history keeps (repeats are not news)."""

Sample = tuple[datetime, Decimal, Decimal]
"""One balance sample as the digest reads it: (time, balance, available_credit). The
state may leave out samples on a stretch where the values never rise (what was spent
there is the difference of the stretch's ends), see `DigestLog.key_samples`."""

_AT = re.compile(r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?:\s+(?P<zone>\S+))?")


@dataclass(frozen=True, slots=True)
class DigestTime:
    """`notify.digest.at`: a wall-clock time of day in a zone."""

    hour: int
    minute: int
    zone: tzinfo
    zone_name: str

    def on(self, day: date) -> datetime:
        """The instant of this time on local `day` (see the module docstring for DST)."""
        local = datetime.combine(day, time(self.hour, self.minute), tzinfo=self.zone)
        return local.astimezone(UTC).astimezone(self.zone)

    def day_of(self, at: datetime) -> date:
        """The local date of instant `at` in this zone."""
        return at.astimezone(self.zone).date()

    def __str__(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d} {self.zone_name}"


def zone(name: str | None) -> tuple[tzinfo, str]:
    """An IANA zone (or UTC) by name; None is UTC. Raises ValueError for an unknown name."""
    if name is None or name.upper() in {"UTC", "Z"}:
        return UTC, "UTC"
    try:
        return ZoneInfo(name), name
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin, or UTC"
        ) from None


def parse_at(text: str) -> DigestTime:
    """`"HH:MM"` or `"HH:MM ZONE"` (an IANA name or UTC; default UTC) → `DigestTime`.

    Raises: ValueError with one sentence saying what is wrong.
    """
    match = _AT.fullmatch(" ".join(text.split()))
    if match is None:
        raise ValueError(f'{text!r} is not a time of day; use e.g. "08:00 Europe/Berlin"')
    hour, minute = int(match["hour"]), int(match["minute"])
    if hour > 23 or minute > 59:
        raise ValueError(f"{text!r}: {match['hour']}:{match['minute']} is not a time of day")
    tz, name = zone(match["zone"])
    return DigestTime(hour, minute, tz, name)


class Verdict(enum.StrEnum):
    """What `due` decided."""

    SEND = "send"  # the digest of `Due.day` is due: send it and record the day
    NOT_YET = "not_yet"  # before today's time and yesterday's is done (or was skipped)
    SENT = "sent"  # the latest scheduled digest is already recorded
    SKIP = "skip"  # the latest one is CATCH_UP_LIMIT or more late: record it as skipped


@dataclass(frozen=True, slots=True)
class Due:
    """`due`'s answer: the verdict, the local day and scheduled instant it is about, and
    how late `now` is for it."""

    verdict: Verdict
    day: date
    scheduled: datetime
    late: timedelta


def due(at: DigestTime, now: datetime, last_day: date | None) -> Due:
    """Is a digest due at `now`? Pure.

    In: the configured time, `now` (aware), the latest local day already recorded (sent
    or skipped), None when none is. The digest in question is the latest scheduled one
    at or before `now` (today's once its time has come, else yesterday's).
    Out: `SENT` when that day is recorded; `SEND` when it is less than `CATCH_UP_LIMIT`
    late (on time, or the catch-up at start-up after downtime); `SKIP` when it is more
    late; `NOT_YET` is never about a recorded day (it cannot occur for the latest one).
    """
    today = at.day_of(now)
    scheduled = at.on(today)
    day = today
    if now < scheduled:
        day = today - timedelta(days=1)
        scheduled = at.on(day)
    late = now - scheduled
    if last_day is not None and last_day >= day:
        return Due(Verdict.SENT if day == today else Verdict.NOT_YET, day, scheduled, late)
    verdict = Verdict.SEND if late < CATCH_UP_LIMIT else Verdict.SKIP
    return Due(verdict, day, scheduled, late)


# ---------------------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class Happening:
    """One entry of the alert history: a transition worth a line in the digest.

    `kind` is the rule's kind (`balance`, `drift`, `credentials`, ...; `builtin` for the
    watcher's own rules); `detail` says more (how long it fired, what changed).
    """

    at: datetime
    key: AlertKey
    reason: Reason
    severity: Severity
    kind: str
    value: str = ""
    detail: str = ""


def happenings(transitions: Iterable[Transition], kinds: Mapping[str, str]) -> list[Happening]:
    """The history entries of one cycle's transitions (`RECORDED` reasons only).

    In: the transitions and each rule's kind by name (a rule not in it is `builtin`).
    """
    return [
        Happening(
            at=t.at,
            key=t.key,
            reason=t.reason,
            severity=t.severity,
            kind=kinds.get(t.key.rule, "builtin"),
            value=_value(t),
            detail=_detail(t),
        )
        for t in transitions
        if t.reason in RECORDED
    ]


def _value(t: Transition) -> str:
    if t.finding is not None and t.finding.value:
        return t.finding.value
    return t.state.value if t.state is not None else ""


def _detail(t: Transition) -> str:
    if t.reason is Reason.RESOLVED:
        return f"fired {format_duration(t.fired_for)}"
    finding = t.finding
    if finding is None:
        return ""
    if finding.credential_changes:
        return "; ".join(f"secret {c.id} {c.change}" for c in finding.credential_changes)
    if t.reason is Reason.EVENTS and finding.events:
        return ", ".join(sorted({e.change_type or e.event_type or "event" for e in finding.events}))
    return ""


# ---------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class AccountDay:
    """What the digest says about one account, read from the state.

    - `samples`: balance samples (`Sample`) from a little before `now - WINDOW` to `now`,
      oldest first (the balance then and now, spend and runway come from them).
    - `happenings`: the alert history of the window; `drift`: firing drift alerts now.
    - `topups`: ledger entries of the window; `holds`: holds in force or touched in it
      (`hold_after` judges which are active).
    - `undelivered`: notifications of this account still waiting in the outbox.
    - `spend_today` / `top_products`: the provider's own figure of the calendar day so
      far when a source gives one (Telnyx `charges_summary`, read for a spend rule),
      shown beside the 24 h spend from the samples; `spend_since` says from when
      (e.g. ` (since 00:00 Europe/Berlin)`).
    """

    account: str
    currency: str = ""
    samples: Sequence[Sample] = ()
    happenings: Sequence[Happening] = ()
    drift: Sequence[AlertState] = ()
    topups: Sequence[Entry] = ()
    holds: Sequence[Hold] = ()
    hold_after: timedelta = timedelta(hours=24)
    undelivered: int = 0
    spend_today: Decimal | None = None
    top_products: Sequence[tuple[str, Decimal]] = ()
    spend_since: str = ""


def balance_at(samples: Sequence[Sample], at: datetime) -> Decimal | None:
    """The balance as it was at `at`: of the last sample at or before it, else of the
    first sample after it (None without samples)."""
    before = None
    for sample in samples:
        if sample[0] > at:
            break
        before = sample
    if before is not None:
        return before[1]
    return samples[0][1] if samples else None


def spent(points: Sequence[tuple[datetime, Decimal]]) -> Decimal:
    """Money spent over `(time, value)` samples: the sum of every fall between two
    consecutive samples; a rise (a top-up, a refund) is left out, not counted against.
    The spend rules' figure (`spend_figures.spent`) over the samples' whole span."""
    if not points:
        return Decimal(0)
    times = [at for at, _ in points]
    return spend_figures.spent(points, min(times), max(times))
