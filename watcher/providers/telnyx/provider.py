"""`TelnyxProvider`: one Telnyx account behind the `Provider` protocol, and `build`, the
factory the registry finds by this module's name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from watcher.core.discovery import child_name
from watcher.core.model import Balance
from watcher.core.payment import TopupResult
from watcher.providers.base import ClientOptions, Collected, Factory, Needs, Provider, StateView
from watcher.providers.discovery import Child
from watcher.providers.telnyx import managed
from watcher.providers.telnyx.client import TelnyxClient, keepalive_expiry
from watcher.providers.telnyx.sources import collect

MASK = "***"


class TelnyxProvider:
    """A Telnyx account: its client, read through `sources.collect`.

    In: the account name, its client, its API key (for `redact` only), how often slow
    sources are read (`poll.slow_interval`) and, with `managed_accounts: true`, how a
    managed account's provider is built (`children`: name and key → provider).
    """

    kind = "telnyx"

    def __init__(
        self,
        account: str,
        client: TelnyxClient,
        api_key: SecretStr,
        slow_interval: timedelta = timedelta(minutes=10),
        children: Callable[[str, SecretStr], Provider] | None = None,
    ) -> None:
        self._account = account
        self.client = client
        self._key = api_key
        self._slow_interval = slow_interval
        self._children = children

    def __repr__(self) -> str:
        return f"TelnyxProvider(account={self._account!r}, client={self.client!r})"

    @property
    def account(self) -> str:
        return self._account

    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent

    async def collect(
        self,
        needs: Needs,
        view: StateView,
        now: datetime,
        *,
        first_start: datetime,
        deadline: float | None,
    ) -> Collected:
        """See `Provider.collect` (balance, audit events, webhook failures, and the slow
        invoices and auto-recharge prefs)."""
        return await collect(
            self._account,
            self.client,
            view,
            needs,
            now,
            first_start=first_start,
            deadline=deadline,
            slow_interval=self._slow_interval,
        )

    @property
    def discovers(self) -> bool:
        """True with `managed_accounts: true` (see `watcher.providers.discovery`)."""
        return self._children is not None

    async def discover(self, now: datetime, *, deadline: float | None) -> list[Child]:
        """The managed accounts (`managed.discover`). Raises TelnyxError."""
        return await managed.discover(self.client, self._child, deadline=deadline)

    async def reread(self, child: Child, *, deadline: float | None) -> Child:
        """One managed account's single GET again (`managed.reread`). Raises TelnyxError."""
        return await managed.reread(self.client, child, self._child, deadline=deadline)

    def _child(self, label: str, key: SecretStr) -> Provider:
        if self._children is None:
            raise ValueError(f"{self._account} has no managed_accounts: true")
        return self._children(child_name(self._account, label), key)

    async def read_balance(self, *, deadline: float | None) -> Balance:
        """`GET /balance`. Raises TelnyxError (a ProviderError)."""
        return await self.client.get_balance(deadline=deadline)

    async def pay(self, amount: Decimal, *, timeout: float) -> TopupResult:  # noqa: ASYNC109
        """One `POST /payment/stored_payment_transactions` (see `TelnyxClient.create_topup`)."""
        return await self.client.create_topup(amount, timeout=timeout)

    def redact(self, text: str) -> str:
        secret = self._key.get_secret_value()
        return text.replace(secret, MASK) if secret else text

    async def aclose(self) -> None:
        await self.client.aclose()


def build(account: Any, secrets: Any, options: ClientOptions) -> TelnyxProvider:
    """The provider of one `provider: telnyx` entry of `accounts`.

    In: the entry (`name`, `base_url`, `managed_accounts`), the runtime's `ResolvedSecrets` (its
    `api_keys[name]`) and the client options.
    """
    key: SecretStr = secrets.api_keys[account.name]
    base_url: str = account.base_url
    on_request = managed.templated(options.on_request)

    def one(name: str, api_key: SecretStr) -> TelnyxProvider:
        client = TelnyxClient(
            base_url=base_url,
            api_key=api_key,
            timeout=options.timeout,
            on_request=on_request,
            keepalive=keepalive_expiry(options.interval),
            pool=None if options.pools is None else options.pools.for_url(base_url),
        )
        return TelnyxProvider(name, client, api_key, options.slow_interval)

    provider = one(account.name, key)
    if getattr(account, "managed_accounts", False):
        provider._children = one  # a managed account's children are not discovered
    return provider


if TYPE_CHECKING:
    _BUILD: Factory = build  # mypy: `TelnyxProvider` satisfies the `Provider` protocol
