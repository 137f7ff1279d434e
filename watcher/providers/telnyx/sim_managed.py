"""The Telnyx simulator's managed accounts: `GET /managed_accounts` (paginated) and
`GET /managed_accounts/{id}` for a manager key.

Shapes from the telnyx-python SDK (`types/managed_account.py`,
`managed_account_list_response.py`; the endpoints are not in the vendored spec): the
list items carry no balance and no key; the single GET adds `balance`, `rollup_billing`
and the child's own `api_key` / `api_token`. Each child is another `SimAccount` served by
the same simulator (a tenant: `SimServer(accounts=...)`), so its key answers its own
`/balance`. A manager's `SimAccount.managed` holds its children; tests add and remove
them.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from watcher.core.model import Balance
from watcher.providers.simkit import iso
from watcher.providers.telnyx.sim_records import JSON


class Tenant(Protocol):
    """What a managed account needs of a simulated account (`SimAccount`)."""

    _api_key: str

    def balance(self) -> Balance: ...


class Manager(Tenant, Protocol):
    managed: SimManaged


TenantT = TypeVar("TenantT", bound=Tenant)


MANAGER_ID = "f65ceda4-6522-4ad6-aede-98de83385123"
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class ManagedChild(Generic[TenantT]):
    """One managed account: the simulated account behind it and its listing facts."""

    account: TenantT
    email: str
    rollup_billing: bool = False
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    api_token: str = field(default_factory=lambda: f"tok-{secrets.token_hex(12)}", repr=False)
    created_at: str = "2026-11-01T09:00:00Z"

    @property
    def api_key(self) -> str:
        return self.account._api_key


class SimManaged:
    """The managed accounts of one manager account (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: list[ManagedChild[Any]] = []

    def add(
        self, account: TenantT, *, email: str, rollup_billing: bool = False
    ) -> ManagedChild[TenantT]:
        """Make `account` (also a tenant of the simulator) a managed account."""
        child = ManagedChild(account, email, rollup_billing)
        with self._lock:
            self._children.append(child)
        return child

    def remove(self, child_id: str) -> None:
        """Take a managed account away (as if cancelled)."""
        with self._lock:
            self._children = [c for c in self._children if c.id != child_id]

    def children(self) -> list[ManagedChild[Any]]:
        with self._lock:
            return list(self._children)

    def find(self, child_id: str) -> ManagedChild[Any] | None:
        return next((c for c in self.children() if c.id == child_id), None)


def _item(child: ManagedChild[Any]) -> JSON:
    return {
        "id": child.id,
        "api_user": "manager@example.com",
        "created_at": child.created_at,
        "updated_at": child.created_at,
        "email": child.email,
        "manager_account_id": MANAGER_ID,
        "record_type": "managed_account",
        "managed_account_allow_custom_pricing": False,
        "organization_name": "Sim Reseller",
        "rollup_billing": child.rollup_billing,
    }


def list_items(manager: Manager) -> list[JSON]:
    """The list items, newest first (the API's default order)."""
    children = manager.managed.children()
    return [_item(c) for c in reversed(children)]


def one(manager: Manager, child_id: str, now: datetime) -> JSON | None:
    """`GET /managed_accounts/{id}` `data`, None when there is no such child."""
    child = manager.managed.find(child_id)
    if child is None:
        return None
    own = (manager if child.rollup_billing else child.account).balance()
    balance = {
        "balance": str(own.balance.quantize(CENT)),
        "credit_limit": str(own.credit_limit.quantize(CENT)),
        "available_credit": str(own.available_credit.quantize(CENT)),
        "currency": own.currency,
        "record_type": "balance",
    }
    return {
        **_item(child),
        "updated_at": iso(now),
        "api_key": child.api_key,
        "api_token": child.api_token,
        "balance": balance,
    }
