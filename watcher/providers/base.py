"""The `Provider` protocol: what the service layer holds an account by, and the
provider-neutral values it speaks.

A provider turns its API into the core's `AccountSnapshot` (`collect`), reads the
balance again right before a payment (`read_balance`) and pays (`pay`). It never writes
the state: it reads it through `StateView` (which `watcher.state.store.Store` satisfies
structurally) and returns in `Collected` everything the cycle's one commit transaction
writes. A failed source is a `SourceFailure` value in `Collected`, never an exception.

This module imports only `watcher.core` and `watcher.providers.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from watcher.core.model import (
    AccountSnapshot,
    AuditEvent,
    Balance,
    ChargesQuery,
    SourceName,
    WebhookDelivery,
)
from watcher.core.payment import TopupOutcome, TopupResult
from watcher.providers.errors import ProviderError

if TYPE_CHECKING:
    from watcher.providers.pool import HostPools

__all__ = [
    "DEFAULT_OVERLAP",
    "ClientOptions",
    "Collected",
    "Factory",
    "Needs",
    "Provider",
    "ProviderError",
    "SourceFailure",
    "StateView",
    "TopupOutcome",
    "TopupResult",
]

DEFAULT_OVERLAP = timedelta(minutes=10)
"""How far before its cursor an incremental source re-reads (late or reordered records)."""


@dataclass(frozen=True, slots=True)
class Needs:
    """What the loaded rules need polled; the same for every account of a cycle.

    - `sources`: the sources to read (a provider skips one it does not offer).
    - `ratio_windows`: windows whose delivery totals a `ratio` rule divides by.
    - `ratio_floors`: per such window, the failures in it from which a total can matter
      (fewer: it need not be read; a window not in it is always read).
    - `window`: the longest webhook-failure window (counted from the local store).
    - `overlap`: how far before its cursor an incremental read starts.
    - `history`: how far back the rules look at balance samples (forecasts, spend).
    - `charges`: what the calendar spend rules need of the charges, one per time zone.
    """

    sources: frozenset[SourceName]
    ratio_windows: frozenset[timedelta] = frozenset()
    window: timedelta = timedelta(0)
    overlap: timedelta = DEFAULT_OVERLAP
    history: timedelta = timedelta(0)
    ratio_floors: Mapping[timedelta, int] = field(default_factory=dict)
    charges: tuple[ChargesQuery, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """A source that could not be read this cycle: one sentence without secrets, and
    `auth` when the provider rejected the credentials (401/403)."""

    message: str
    auth: bool = False

    @classmethod
    def of(cls, error: ProviderError) -> SourceFailure:
        """The failure a provider's error stands for."""
        return cls(str(error), auth=error.auth)


@dataclass(frozen=True, slots=True)
class Collected:
    """What one account's collect step read, and what the commit writes for it.

    - `snapshot`: what the rules see. Its `errors` are left empty by the provider: the
      cycle fills them from `failures` and the stored source health (`failing_since`).
    - `succeeded` / `failures`: the sources read, and those that failed.
    - `balance_sample`: the balance to store as a sample at the cycle's `now` (forecasts).
    - `audit_seen`: audit events to mark seen (each one is alerted once).
    - `webhook_failures`: failed deliveries to store (upserted by id); windows are
      counted from the store, so the snapshot already includes these.
    - `cursors`: the new cursor of each source whose read completed.
    - `resumes`: where an unfinished paged read goes on (opaque text of the provider),
      None when the read is done. Everything here is written as given, also for a
      source that failed after some pages (progress the provider wants kept).
    - `behind`: per source still reading a backlog, how far it got (for `once`).
    """

    snapshot: AccountSnapshot
    succeeded: frozenset[SourceName] = frozenset()
    failures: Mapping[SourceName, SourceFailure] = field(default_factory=dict)
    balance_sample: Balance | None = None
    audit_seen: tuple[AuditEvent, ...] = ()
    webhook_failures: tuple[WebhookDelivery, ...] = ()
    cursors: Mapping[SourceName, datetime] = field(default_factory=dict)
    resumes: Mapping[SourceName, str | None] = field(default_factory=dict)
    behind: Mapping[SourceName, str] = field(default_factory=dict)

    @property
    def account(self) -> str:
        return self.snapshot.account


class StateView(Protocol):
    """The reads of the state a collector may make (the cycle passes its `Store`).

    Sources are named by `str(SourceName)`; times are aware UTC datetimes.
    """

    def get_cursor(self, account: str, source: str) -> datetime | None:
        """Where the last complete read of `source` ended, None when never read."""
        ...

    def get_resume(self, account: str, source: str) -> str | None:
        """The resume text an unfinished read left (`Collected.resumes`), or None."""
        ...

    def unseen_audit_events(self, account: str, events: Sequence[AuditEvent]) -> list[AuditEvent]:
        """The events never marked seen (input order kept, repeated ids once)."""
        ...

    def webhook_failures(self, account: str, since: datetime) -> list[WebhookDelivery]:
        """Stored failed deliveries started at or after `since`, oldest first."""
        ...

    def balance_samples(self, account: str, since: datetime) -> list[tuple[datetime, Balance]]:
        """Stored balance samples taken at or after `since`, oldest first."""
        ...


class Provider(Protocol):
    """One watched account at one provider, as the service layer holds it.

    Built by the provider's factory (`watcher.providers.registry.build`); the daemon never
    sees a concrete client. `deadline` is a `time.monotonic()` instant after which no
    retry starts (None: no limit); `pay` is never retried and takes a plain timeout.
    """

    @property
    def account(self) -> str:
        """The configured account name (`accounts[].name`)."""
        ...

    @property
    def kind(self) -> str:
        """The provider's name as configured (`accounts[].provider`), e.g. `telnyx`."""
        ...

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far (every attempt counts), for the cycle's summary."""
        ...

    async def collect(
        self,
        needs: Needs,
        view: StateView,
        now: datetime,
        *,
        first_start: datetime,
        deadline: float | None,
    ) -> Collected:
        """Read the needed sources (concurrently) into a snapshot; write nothing.

        In: what the rules need, the state to read cursors and stored windows from, the
        cycle's `now`, the daemon's very first start (older events are never alerted)
        and the cycle's deadline. Out: `Collected`. Never raises for a source that
        fails: it is in `Collected.failures`.
        """
        ...

    async def read_balance(self, *, deadline: float | None) -> Balance:
        """The balance read right now (the re-read before a payment).

        Raises ProviderError (the provider's own subclass) when it cannot be read.
        """
        ...

    async def pay(self, amount: Decimal, *, timeout: float) -> TopupResult:  # noqa: ASYNC109
        """Top up `amount` in the account's currency: ONE request, never retried.

        In: the amount and `timeout`, the seconds the whole exchange may take (messages
        quote it: "timed out after 10s"). Out: the outcome (succeeded, failed: no money
        moved, unknown: maybe paid). Never raises for an HTTP or network problem.
        """
        ...

    def redact(self, text: str) -> str:
        """`text` with every secret of this account (key, token) masked."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP connections; the provider is not used afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """What every provider's client is built with, from the runtime.

    - `timeout`: seconds one HTTP request may take (`poll.timeout`).
    - `interval`: the poll interval (idle connections are kept about that long).
    - `on_request(endpoint, status)`: called per HTTP attempt (None: transport error).
    - `slow_interval`: how often slow sources are read (`poll.slow_interval`; each is
      also read when it never was, its last read time being its cursor in the state).
    - `pools`: the wiring's connection pool per host, with its bound on requests in
      flight (`poll.concurrency`); None: each client has a pool of its own, unbounded.
    """

    timeout: float
    interval: timedelta
    on_request: Callable[[str, int | None], None] | None = None
    slow_interval: timedelta = timedelta(minutes=10)
    pools: HostPools | None = None


Factory = Callable[[Any, Any, ClientOptions], Provider]
"""`build(account_config, secrets, options) -> Provider`: each provider package's
`provider.build`. `account_config` is the provider's entry of `accounts`,
`secrets` the runtime's `ResolvedSecrets`. Raises ValueError for an unusable config."""
