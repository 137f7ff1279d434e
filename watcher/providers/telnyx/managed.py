"""Telnyx managed accounts (DESIGN §2.1, §10): the listing, the single GETs, the children.

`GET /managed_accounts` (every page, `include_cancelled_accounts=false`) lists the
managed accounts of a manager key; `GET /managed_accounts/{id}` of each gives its
`rollup_billing`, its balance and its own `api_key` / `api_token` (shapes: telnyx-python
`types/managed_account.py`). The key and token are held as `SecretStr`, registered with
the log scrubber (`watcher.core.redact`) the moment they are parsed, never stored,
logged or shown; the token is not used at all.

`discover` turns a listing into `Child` values, each with a provider of its own built by
the caller's factory (a Telnyx provider with the child's key at the manager's base URL);
a child that shares the manager's balance (`rollup_billing: true`) is wrapped in
`SharedBalance`, so it is never polled for a balance and never paid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import structlog
from pydantic import SecretStr

from watcher.core.discovery import telnyx_label
from watcher.core.redact import register_secret
from watcher.providers.base import Provider
from watcher.providers.discovery import Child, SharedBalance
from watcher.providers.telnyx.client import TelnyxClient
from watcher.providers.telnyx.errors import TelnyxError, parse
from watcher.providers.telnyx.wire import MAX_PAGE_SIZE, Money, PageBody, _Wire

log = structlog.get_logger(__name__)

LIST_ENDPOINT = "/managed_accounts"
ONE_ENDPOINT = "/managed_accounts/{id}"

ChildFactory = Callable[[str, SecretStr], Provider]
"""`(label, api_key) -> Provider`: the provider of one managed account."""
OnRequest = Callable[[str, int | None], None]


def templated(hook: OnRequest | None) -> OnRequest | None:
    """`hook` told `/managed_accounts/{id}` for every single GET (metrics label by
    endpoint: one label, not one per managed account)."""
    if hook is None:
        return None
    prefix = f"{LIST_ENDPOINT}/"

    def observed(endpoint: str, status: int | None) -> None:
        hook(ONE_ENDPOINT if endpoint.startswith(prefix) else endpoint, status)

    return observed


class ManagedItem(_Wire):
    """One item of `GET /managed_accounts` (no balance, no key)."""

    id: str
    email: str | None = None
    rollup_billing: bool | None = None


class ManagedBalance(_Wire):
    balance: Money | None = None
    credit_limit: Money | None = None
    available_credit: Money | None = None
    currency: str | None = None


class ManagedAccount(_Wire):
    """`GET /managed_accounts/{id}` `data`: the child's own key and token (secrets)."""

    id: str
    email: str | None = None
    api_key: SecretStr
    api_token: SecretStr | None = None
    rollup_billing: bool | None = None
    balance: ManagedBalance | None = None


class ManagedBody(_Wire):
    data: ManagedAccount


async def list_managed(
    client: TelnyxClient, *, page_size: int = MAX_PAGE_SIZE, deadline: float | None = None
) -> list[ManagedItem]:
    """Every managed account of the client's (manager) key, every page until
    `page_number >= total_pages`. Raises TelnyxError."""
    params = {"include_cancelled_accounts": "false", "page[size]": str(page_size)}
    pages = client._pages(LIST_ENDPOINT, params, PageBody[ManagedItem], _same, 1, deadline)
    return [item async for page in pages for item in page.items]


def _same(item: ManagedItem) -> ManagedItem:
    return item


async def get_managed(
    client: TelnyxClient, account_id: str, *, deadline: float | None = None
) -> ManagedAccount:
    """One managed account with its key and token (both registered with the log
    scrubber before this returns). Raises TelnyxError."""
    endpoint = f"{LIST_ENDPOINT}/{account_id}"
    response = await client._get(endpoint, {}, deadline)
    found = parse(ManagedBody, response, ONE_ENDPOINT).data
    register_secret(found.api_key.get_secret_value())
    if found.api_token is not None:
        register_secret(found.api_token.get_secret_value())
    return found


async def discover(
    client: TelnyxClient, build: ChildFactory, *, deadline: float | None = None
) -> list[Child]:
    """The managed accounts as children: listed, then each read once (concurrently).

    A child whose single GET fails is still listed (it has not gone away) but has no
    provider this time (`Child.provider` None: the caller keeps the one it had). Raises
    TelnyxError when the listing itself fails.
    """
    items = await list_managed(client, deadline=deadline)
    return list(await asyncio.gather(*(_child(client, i, build, deadline) for i in items)))


async def _child(
    client: TelnyxClient, item: ManagedItem, build: ChildFactory, deadline: float | None
) -> Child:
    listed = Child(telnyx_label(item.email, item.id), bool(item.rollup_billing), ref=item.id)
    try:
        return await reread(client, listed, build, deadline=deadline)
    except TelnyxError as exc:
        log.warning("discovery.child_failed", child=listed.label, error=str(exc))
        return replace(listed, problem=str(exc))


async def reread(
    client: TelnyxClient, child: Child, build: ChildFactory, *, deadline: float | None = None
) -> Child:
    """`child` (listed; `ref` its id) with its provider, from its single GET. Raises
    TelnyxError."""
    found = await get_managed(client, child.ref, deadline=deadline)
    shared = bool(found.rollup_billing)
    provider = build(child.label, found.api_key)
    wrapped = SharedBalance(provider) if shared else provider
    return replace(child, shared=shared, provider=wrapped, problem="")
