"""Discovery seen from the providers (DESIGN §10): what a parent account lists.

A provider that can list child accounts (Telnyx managed accounts, Vonage subaccounts)
satisfies `Discovering`: `discovers` says whether its config asked for it, `discover`
lists the children now, each a `Child` with a ready `Provider` (built on the parent's
connection pool). The service layer (`watcher.service.discovery`) decides when to ask,
names the children and keeps the known set.

`SharedBalance` wraps the provider of a child that shares its parent's balance: its
balance is never read (a balance rule sees none for it) and it is never paid.
`Unlisted` stands for a known child that cannot be read at all this cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from watcher.core.model import AccountSnapshot, Balance, SourceName
from watcher.core.payment import TopupOutcome, TopupResult
from watcher.providers.base import Collected, Needs, Provider, SourceFailure, StateView
from watcher.providers.errors import ProviderError

NOT_PAID = "a discovered account is never topped up: nothing was sent"


class DiscoveryUnavailable(ProviderError):
    """The account cannot list children at all (Vonage: subaccounts not provisioned,
    403): not an outage; the service stops asking until a restart or reload."""


@dataclass(frozen=True, slots=True)
class Child:
    """One child as listed: `label` names it (Telnyx: email or id; Vonage: api key),
    `shared` when it uses its parent's balance, `suspended` as the provider says, and its
    provider (None: listed, but not readable this time: `problem` says why, `ref` is
    what `Discovering.reread` reads it again by)."""

    label: str
    shared: bool = False
    suspended: bool = False
    provider: Provider | None = None
    ref: str = ""
    problem: str = ""


@runtime_checkable
class Discovering(Protocol):
    """A provider that can list the child accounts of its account."""

    @property
    def kind(self) -> str:
        """The provider's name (`telnyx`, `vonage`)."""
        ...

    @property
    def discovers(self) -> bool:
        """True when the account's config asks for its children to be watched."""
        ...

    async def discover(self, now: datetime, *, deadline: float | None) -> list[Child]:
        """Every child listed now, each provider named `<parent>/<slug(label)>`
        (`watcher.core.discovery.child_name`).

        Raises ProviderError when the listing fails (nothing is known then), its
        subclass DiscoveryUnavailable when the account has no such feature.
        """
        ...

    async def reread(self, child: Child, *, deadline: float | None) -> Child:
        """A listed child without a provider (`Child.provider` None), read again.

        Raises ProviderError when it still cannot be read.
        """
        ...


class SharedBalance:
    """A child provider whose balance is its parent's: collects without the balance
    source, refuses a balance read and never pays."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"SharedBalance({self.inner!r})"

    @property
    def account(self) -> str:
        return self.inner.account

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def requests_sent(self) -> int:
        return self.inner.requests_sent

    async def collect(
        self,
        needs: Needs,
        view: StateView,
        now: datetime,
        *,
        first_start: datetime,
        deadline: float | None,
    ) -> Collected:
        without = replace(needs, sources=needs.sources - {SourceName.BALANCE})
        return await self.inner.collect(
            without, view, now, first_start=first_start, deadline=deadline
        )

    async def read_balance(self, *, deadline: float | None) -> Balance:
        raise ProviderError(f"{self.account} shares its parent's balance: it has none of its own")

    async def pay(self, amount: Decimal, *, timeout: float) -> TopupResult:  # noqa: ASYNC109
        return TopupResult(TopupOutcome.FAILED, error=NOT_PAID)

    def redact(self, text: str) -> str:
        return self.inner.redact(text)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Unlisted:
    """A known child whose parent's listing failed in a process that never listed it:
    nothing can be read (no key), so every source it needs is a failure this cycle, and
    its alerts are kept as they are (not judged) instead of being resolved."""

    requests_sent = 0

    def __init__(self, account: str, kind: str, reason: str, *, shared: bool = False) -> None:
        self._account = account
        self.kind = kind
        self.reason = reason
        self.shared = shared

    def __repr__(self) -> str:
        return f"Unlisted(account={self._account!r})"

    @property
    def account(self) -> str:
        return self._account

    async def collect(
        self,
        needs: Needs,
        view: StateView,
        now: datetime,
        *,
        first_start: datetime,
        deadline: float | None,
    ) -> Collected:
        sources = needs.sources - ({SourceName.BALANCE} if self.shared else set())
        failure = SourceFailure(self.reason)
        snapshot = AccountSnapshot(self._account, provider=self.kind)
        return Collected(snapshot, failures=dict.fromkeys(sources, failure))

    async def read_balance(self, *, deadline: float | None) -> Balance:
        raise ProviderError(self.reason)

    async def pay(self, amount: Decimal, *, timeout: float) -> TopupResult:  # noqa: ASYNC109
        return TopupResult(TopupOutcome.FAILED, error=NOT_PAID)

    def redact(self, text: str) -> str:
        return text

    async def aclose(self) -> None:
        return None


if TYPE_CHECKING:

    def _is_provider_too(unlisted: Unlisted) -> Provider:
        return unlisted  # mypy: `Unlisted` satisfies the `Provider` protocol

    def _is_provider(shared: SharedBalance) -> Provider:
        return shared  # mypy: `SharedBalance` satisfies the `Provider` protocol
