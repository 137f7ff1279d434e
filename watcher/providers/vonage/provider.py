"""`VonageProvider`: one Vonage account behind the `Provider` protocol, and `build`, the
factory the registry finds by this module's name."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import SecretStr

from watcher.core.model import Balance, SourceName
from watcher.core.payment import TopupOutcome, TopupResult
from watcher.providers.base import ClientOptions, Collected, Factory, Needs, StateView
from watcher.providers.discovery import Child, DiscoveryUnavailable
from watcher.providers.http import keepalive_expiry, mask
from watcher.providers.vonage import subaccount
from watcher.providers.vonage.client import VonageClient
from watcher.providers.vonage.errors import VonageError
from watcher.providers.vonage.sources import DISABLING, Account, collect, to_balance
from watcher.providers.vonage.wire import VonageSubaccounts

log = structlog.get_logger(__name__)

NO_TRX = "no topup.trx is configured for this account: nothing was sent"


class VonageProvider:
    """A Vonage account: its client, read through `sources.collect`.

    In: the account (name, currency, slow cadence, whether subaccounts are read), its
    client, the auto-reload payment's `trx` (None without `topup.enabled`) and the
    secrets `redact` masks. A source the account does not have (audit beta, subaccounts)
    stays disabled for the life of this object; a reload builds a new one.
    """

    kind = "vonage"

    def __init__(
        self,
        account: Account,
        client: VonageClient,
        *,
        trx: SecretStr | None,
        secrets: tuple[SecretStr, ...],
    ) -> None:
        self._account = account
        self.client = client
        self._trx = trx
        self._secrets = tuple(s.get_secret_value() for s in secrets if s.get_secret_value())

    def __repr__(self) -> str:
        return f"VonageProvider(account={self._account.name!r}, client={self.client!r})"

    @property
    def account(self) -> str:
        return self._account.name

    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent

    @property
    def subaccounts(self) -> VonageSubaccounts | None:
        """The subaccounts last read (`subaccounts: true`), for account discovery."""
        return self._account.subaccounts

    @property
    def discovers(self) -> bool:
        """True with `subaccounts: true` (see `watcher.providers.discovery`)."""
        return self._account.subaccounts_wanted

    async def discover(self, now: datetime, *, deadline: float | None) -> list[Child]:
        """The subaccounts, listed now (one request; kept as `subaccounts`, so the
        collect does not list them again within `slow_interval`). Raises VonageError."""
        if SourceName.SUBACCOUNTS in self._account.disabled:
            raise DiscoveryUnavailable("subaccounts are not provisioned for this account")
        try:
            found = await self.client.list_subaccounts(deadline=deadline)
        except VonageError as exc:
            if exc.status not in DISABLING[SourceName.SUBACCOUNTS]:
                raise
            self._account.disabled.add(SourceName.SUBACCOUNTS)  # the collect: not again
            raise DiscoveryUnavailable(str(exc), status=exc.status) from None
        self._account.subaccounts, self._account.subaccounts_at = found, now
        return subaccount.children(self.account, found, self._account.currency)

    async def reread(self, child: Child, *, deadline: float | None) -> Child:
        """A subaccount always has its provider (nothing is read per subaccount)."""
        return child

    async def collect(
        self,
        needs: Needs,
        view: StateView,
        now: datetime,
        *,
        first_start: datetime,
        deadline: float | None,
    ) -> Collected:
        """See `Provider.collect` (balance, audit events, secrets, settings, subaccounts)."""
        return await collect(
            self._account,
            self.client,
            view,
            needs,
            now,
            first_start=first_start,
            deadline=deadline,
        )

    async def read_balance(self, *, deadline: float | None) -> Balance:
        """`GET /account/get-balance`. Raises VonageError (a ProviderError)."""
        read = await self.client.get_balance(deadline=deadline)
        return to_balance(read, self._account.currency)

    async def pay(self, amount: Decimal, *, timeout: float) -> TopupResult:  # noqa: ASYNC109
        """One `POST /account/top-up` with the configured `trx` (never retried).

        Vonage adds a fixed amount (the payment that enabled auto-reload); `amount` is
        the configured one, which the ledger records. Without a `trx`: failed, unsent.
        """
        if self._trx is None or not self._trx.get_secret_value():
            return TopupResult(TopupOutcome.FAILED, error=NO_TRX)
        log.debug("vonage.topup", account=self.account, amount=str(amount))
        return await self.client.create_topup(self._trx, timeout=timeout)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = mask(text, secret)
        return text

    async def aclose(self) -> None:
        await self.client.aclose()


def build(account: Any, secrets: Any, options: ClientOptions) -> VonageProvider:
    """The provider of one `provider: vonage` entry of `accounts`.

    In: the entry (`name`, `currency`, `rest_url`, `api_url`, `subaccounts`), the
    runtime's `ResolvedSecrets` (`api_keys[name]`, `api_secrets[name]`,
    `topup_trx.get(name)`) and the client options.
    """
    name: str = account.name
    secret: SecretStr = secrets.api_secrets[name]
    trx: SecretStr | None = secrets.topup_trx.get(name)
    client = VonageClient(
        api_key=secrets.api_keys[name],
        api_secret=secret,
        rest_url=account.rest_url,
        api_url=account.api_url,
        timeout=options.timeout,
        on_request=options.on_request,
        keepalive=keepalive_expiry(options.interval),
        pool=None if options.pools is None else options.pools.for_url(account.rest_url),
    )
    facts = Account(name, account.currency, options.slow_interval, bool(account.subaccounts))
    hidden = (secret,) if trx is None else (secret, trx)
    return VonageProvider(facts, client, trx=trx, secrets=hidden)


if TYPE_CHECKING:
    _BUILD: Factory = build  # mypy: `VonageProvider` satisfies the `Provider` protocol
