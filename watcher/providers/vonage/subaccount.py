"""A Vonage subaccount as a watched account (DESIGN §2.2, §10), and the listing as
children.

A subaccount carries no secret in the primary's listing
(`GET /accounts/{api_key}/subaccounts`), so it is never asked anything itself: its
balance is the one the listing gave (as fresh as the last listing, read every
`poll.slow_interval`), no extra request per subaccount. One with `balance: null`
(`use_primary_account_balance`) shares the primary's balance: wrapped in
`SharedBalance`, a balance rule sees no balance for it. A subaccount is never paid.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from watcher.core.discovery import child_name
from watcher.core.model import AccountSnapshot, Balance, SourceName
from watcher.core.payment import TopupOutcome, TopupResult
from watcher.providers.base import Collected, Needs, Provider, StateView
from watcher.providers.discovery import NOT_PAID, Child, SharedBalance
from watcher.providers.errors import ProviderError
from watcher.providers.vonage.wire import VonageSubaccount, VonageSubaccounts


class SubaccountProvider:
    """One subaccount: its balance from the listing; no requests, no payments."""

    kind = "vonage"
    requests_sent = 0

    def __init__(self, account: str, sub: VonageSubaccount, currency: str) -> None:
        self._account = account
        self.sub = sub
        self.currency = currency

    def __repr__(self) -> str:
        return f"SubaccountProvider(account={self._account!r})"

    @property
    def account(self) -> str:
        return self._account

    def balance(self) -> Balance | None:
        """The listed balance (`balance` is both balance and available credit, as for a
        primary account); None when shared."""
        value = self.sub.balance
        if value is None:
            return None
        limit = self.sub.credit_limit or Decimal(0)
        return Balance(value, value, limit, Decimal(0), self.currency)

    async def collect(
        self,
        needs: Needs,
        view: StateView,
        now: datetime,
        *,
        first_start: datetime,
        deadline: float | None,
    ) -> Collected:
        """The balance from the last listing, when the rules need one; nothing else."""
        balance = self.balance() if SourceName.BALANCE in needs.sources else None
        history = view.balance_samples(self._account, now - needs.history) if needs.history else []
        snapshot = AccountSnapshot(
            self._account, balance=balance, balance_history=tuple(history), provider="vonage"
        )
        if balance is None:
            return Collected(snapshot)
        read = frozenset({SourceName.BALANCE})
        return Collected(
            snapshot, succeeded=read, balance_sample=balance, cursors={SourceName.BALANCE: now}
        )

    async def read_balance(self, *, deadline: float | None) -> Balance:
        found = self.balance()
        if found is None:
            raise ProviderError(f"{self._account} shares the primary account's balance")
        return found

    async def pay(self, amount: Decimal, *, timeout: float) -> TopupResult:  # noqa: ASYNC109
        return TopupResult(TopupOutcome.FAILED, error=NOT_PAID)

    def redact(self, text: str) -> str:
        return text

    async def aclose(self) -> None:
        return None


def children(parent: str, listing: VonageSubaccounts, currency: str) -> list[Child]:
    """The listed subaccounts as children named `<parent>/<api key>`."""
    out = []
    for sub in listing.subaccounts:
        shared = sub.balance is None or sub.use_primary_account_balance
        one = SubaccountProvider(child_name(parent, sub.api_key), sub, currency)
        provider: Provider = SharedBalance(one) if shared else one
        out.append(Child(sub.api_key, shared=shared, suspended=sub.suspended, provider=provider))
    return out


if TYPE_CHECKING:

    def _is_provider(sub: SubaccountProvider) -> Provider:
        return sub  # mypy: `SubaccountProvider` satisfies the `Provider` protocol
