"""The Telnyx simulator's account: balances, audit events, webhook deliveries, top-ups,
invoices (and its charges, `sim_charges.SimCharges`, as `SimAccount.charges`).

`SimAccount` holds all scripted state of one simulated account; its clock, pending
faults, revoked key and request log come from `simkit.SimAccountBase` (see
watcher/providers/telnyx/sim.py for the server).
"""

from __future__ import annotations

import copy
import hmac
import uuid
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from watcher.core.model import Balance
from watcher.providers.simkit import Clock, SimAccountBase, as_utc, iso
from watcher.providers.telnyx.sim_charges import SimCharges
from watcher.providers.telnyx.sim_managed import SimManaged
from watcher.providers.telnyx.sim_records import (
    CENT,
    DELIVERY_STATUSES,
    JSON,
    ORGANIZATION_ID,
    OWNER_USER_ID,
    Snapshot,
    StoredDelivery,
    StoredEvent,
    attempt_record,
    delivery_record,
    spread,
)

BalanceScript = Callable[[datetime], Decimal]


def _decimal(value: str | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


class SimAccount(SimAccountBase):
    """All state of one simulated account; every method is thread-safe (one lock).

    `clock` (default: the real UTC clock) is read for `created_at` defaults, audit-event
    visibility, balance scripts and transaction timestamps; tests replace it.
    """

    def __init__(
        self,
        *,
        api_key: str = "sim-key",
        clock: Clock | None = None,
        balance: str = "500.00",
        credit_limit: str = "0.00",
        pending: str = "0.00",
        currency: str = "USD",
    ) -> None:
        super().__init__(clock=clock)
        self.currency = currency
        self._api_key = api_key
        self._balance = Decimal(balance)
        self._credit_limit = Decimal(credit_limit)
        self._pending = Decimal(pending)
        self._script: BalanceScript | None = None
        self._script_offset = Decimal(0)
        self._events: list[StoredEvent] = []
        self._deliveries: list[StoredDelivery] = []
        self._version = 0  # bumped by every added record; keys the listing cache
        self._listing: dict[str, tuple[tuple[Any, ...], list[JSON]]] = {}  # per endpoint
        self._topups: list[Decimal] = []
        self._transactions: list[JSON] = []
        self._invoices: dict[str, JSON] = {}  # by invoice_id, in the order added
        self.charges = SimCharges(currency)  # GET /charges_summary, /charges_breakdown
        self.managed = SimManaged()  # GET /managed_accounts, /managed_accounts/{id}
        self._auto_recharge: JSON = {
            "enabled": False,
            "id": "1524126400473204723",
            "invoice_enabled": False,
            "preference": "credit_paypal",
            "recharge_amount": "100.00",
            "record_type": "auto_recharge_pref",
            "threshold_amount": "50.00",
        }

    def __repr__(self) -> str:
        return f"SimAccount(currency={self.currency!r}, revoked={self._revoked})"

    # balance

    def set_balance(
        self,
        balance: str | Decimal,
        *,
        credit_limit: str | Decimal | None = None,
        pending: str | Decimal | None = None,
    ) -> None:
        """Set the balance (and optionally credit limit / pending); removes any balance script."""
        with self._lock:
            self._balance = _decimal(balance)
            self._script = None
            if credit_limit is not None:
                self._credit_limit = _decimal(credit_limit)
            if pending is not None:
                self._pending = _decimal(pending)

    def set_balance_script(self, fn: BalanceScript | None) -> None:
        """Compute the balance as `fn(now)` plus any top-ups made since; None = static again.

        Removing a script freezes the balance at its last scripted value.
        """
        current = self.balance().balance if fn is None else None
        with self._lock:
            if current is not None and self._script is not None:
                self._balance = current
            self._script = fn
            self._script_offset = Decimal(0)

    def balance(self) -> Balance:
        """The balance as `GET /balance` would serve it now (available = balance + limit)."""
        now = self.now()
        with self._lock:
            script, offset, static = self._script, self._script_offset, self._balance
            limit, pending = self._credit_limit, self._pending
        value = static if script is None else _decimal(script(now)) + offset
        return Balance(
            balance=value.quantize(CENT),
            available_credit=(value + limit).quantize(CENT),
            credit_limit=limit.quantize(CENT),
            pending=pending.quantize(CENT),
            currency=self.currency,
        )

    def set_auto_recharge(
        self, *, enabled: bool, threshold_amount: str = "50.00", recharge_amount: str = "100.00"
    ) -> None:
        """Change what `GET /payment/auto_recharge_prefs` serves."""
        with self._lock:
            self._auto_recharge.update(
                enabled=enabled, threshold_amount=threshold_amount, recharge_amount=recharge_amount
            )

    def auto_recharge_prefs(self) -> JSON:
        """The auto-recharge preference object as served (a copy)."""
        with self._lock:
            return dict(self._auto_recharge)

    # audit events

    def add_audit_event(
        self,
        *,
        created_at: datetime | None = None,
        visible_at: datetime | None = None,
        change_type: str = "update",
        change_made_by: str = "account_owner",
        user_id: str | None = None,
        resource_id: str | None = None,
        alternate_resource_id: str | None = None,
        record_type: str = "audit_event",
        changes: list[dict[str, Any]] | None = None,
        id: str | None = None,
    ) -> JSON:
        """Store an audit event; return its JSON as served (a copy).

        - `created_at` defaults to the clock; `visible_at` (default `created_at`) delays
          listing until the clock reaches it, modelling eventual consistency.
        - `user_id` defaults to the account owner, `resource_id` to a new UUID, `id` too.
        - `record_type` is what the API puts there: `audit_event` (the spec's example).
        """
        created = as_utc(created_at) if created_at is not None else self.now()
        visible = as_utc(visible_at) if visible_at is not None else created
        event: JSON = {
            "id": id or str(uuid.uuid4()),
            "record_type": record_type,
            "change_type": change_type,
            "change_made_by": change_made_by,
            "changes": copy.deepcopy(changes),
            "created_at": iso(created),
            "organization_id": ORGANIZATION_ID,
            "resource_id": resource_id or str(uuid.uuid4()),
            "alternate_resource_id": alternate_resource_id,
            "user_id": user_id or OWNER_USER_ID,
        }
        with self._lock:
            self._events.append(StoredEvent(created, visible, event))
            self._version += 1
        return copy.deepcopy(event)

    def add_audit_backlog(
        self,
        count: int,
        *,
        start: datetime,
        end: datetime,
        change_made_by: str = "account_owner",
        user_id: str | None = None,
        record_type: str = "audit_event",
    ) -> None:
        """Store `count` audit events created evenly over [start, end), visible at once.

        For big backlogs: no copies are made and nothing is returned. Each event has a new
        id and resource id and one `changes` entry. Raises ValueError for a negative count.
        """
        step = spread(count, start, end)
        first = as_utc(start)
        events = []
        for i in range(count):
            created = first + step * i
            event: JSON = {
                "id": str(uuid.uuid4()),
                "record_type": record_type,
                "change_type": "update",
                "change_made_by": change_made_by,
                "changes": [{"field": "webhook_url", "from": None, "to": f"https://x/{i}"}],
                "created_at": iso(created),
                "organization_id": ORGANIZATION_ID,
                "resource_id": str(uuid.uuid4()),
                "alternate_resource_id": None,
                "user_id": user_id or OWNER_USER_ID,
            }
            events.append(StoredEvent(created, created, event))
        with self._lock:
            self._events.extend(events)
            self._version += 1

    # webhook deliveries

    def add_webhook_delivery(
        self,
        *,
        status: str = "failed",
        started_at: datetime | None = None,
        event_type: str = "message.finalized",
        url: str = "https://hooks.example.com/telnyx",
        http_status: int | None = 500,
        error_detail: str | None = None,
        id: str | None = None,
    ) -> JSON:
        """Store a webhook delivery with one attempt; return its JSON as served (a copy).

        A failed attempt with an HTTP response carries `errors: [75499]` and the response
        body `error_detail`; without one (`http_status=None`) it carries an error object
        `{code: "75001", title, detail: error_detail}`, as in the spec's examples. A
        delivered attempt answers `http_status` when below 400, else 200.
        Raises ValueError for a status other than delivered / failed.
        """
        if status not in DELIVERY_STATUSES:
            raise ValueError(f"status must be one of {DELIVERY_STATUSES}")
        started = as_utc(started_at) if started_at is not None else self.now()
        attempt = attempt_record(status, started, url, http_status, error_detail)
        delivery = delivery_record(id or str(uuid.uuid4()), status, started, event_type, attempt)
        with self._lock:
            self._deliveries.append(StoredDelivery(started, delivery))
            self._version += 1
        return copy.deepcopy(delivery)

    def add_webhook_backlog(
        self,
        count: int,
        *,
        start: datetime,
        end: datetime,
        status: str = "failed",
        event_type: str = "message.finalized",
        url: str = "https://hooks.example.com/telnyx",
        http_status: int | None = 500,
    ) -> None:
        """Store `count` deliveries started evenly over [start, end), each with one attempt.

        For big backlogs: no copies are made and nothing is returned. Raises ValueError
        for a negative count or an unknown status.
        """
        if status not in DELIVERY_STATUSES:
            raise ValueError(f"status must be one of {DELIVERY_STATUSES}")
        step = spread(count, start, end)
        first = as_utc(start)
        deliveries = []
        for i in range(count):
            started = first + step * i
            attempt = attempt_record(status, started, url, http_status, None)
            delivery = delivery_record(str(uuid.uuid4()), status, started, event_type, attempt)
            deliveries.append(StoredDelivery(started, delivery))
        with self._lock:
            self._deliveries.extend(deliveries)
            self._version += 1

    # invoices

    def add_invoice(
        self,
        *,
        period_start: date,
        period_end: date,
        paid: bool = False,
        id: str | None = None,
    ) -> JSON:
        """Store an invoice (`GET /invoices` shape); return its JSON as served (a copy)."""
        invoice_id = id or str(uuid.uuid4())
        invoice: JSON = {
            "file_id": str(uuid.uuid4()),
            "invoice_id": invoice_id,
            "paid": paid,
            "period_end": period_end.isoformat(),
            "period_start": period_start.isoformat(),
            "url": f"https://api.telnyx.com:443/v2/invoices/{invoice_id}",
        }
        with self._lock:
            self._invoices[invoice_id] = invoice
        return dict(invoice)

    def set_invoice_paid(self, invoice_id: str, paid: bool = True) -> None:
        """Mark an invoice paid (or unpaid again). Raises KeyError for an unknown id."""
        with self._lock:
            self._invoices[invoice_id]["paid"] = paid

    def remove_invoice(self, invoice_id: str) -> None:
        """Stop listing an invoice. Raises KeyError for an unknown id."""
        with self._lock:
            del self._invoices[invoice_id]

    def invoices(self) -> list[JSON]:
        """The invoices as served (copies), in the order added."""
        with self._lock:
            return [dict(invoice) for invoice in self._invoices.values()]

    # what the server did (faults, auth and the request log: SimAccountBase)

    @property
    def topups(self) -> list[Decimal]:
        """Amounts of successful top-up POSTs, oldest first (a copy)."""
        with self._lock:
            return list(self._topups)

    @property
    def transactions(self) -> list[JSON]:
        """The `data` objects returned by successful top-ups, oldest first (copies)."""
        with self._lock:
            return copy.deepcopy(self._transactions)

    # used by the request handler

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        with self._lock:
            revoked, key = self._revoked, self._api_key
        valid = hmac.compare_digest(token.strip().encode(), key.encode())
        return not revoked and scheme.lower() == "bearer" and valid

    def _listed(
        self, endpoint: str, key: tuple[Any, ...], build: Callable[[Snapshot], list[JSON]]
    ) -> list[JSON]:
        """The filtered, sorted items of one list query; the last one per endpoint is
        cached, so that a big backlog read page by page is not sorted for every page."""
        snapshot = self._snapshot()
        with self._lock:
            full_key = (self._version, len(snapshot.events), *key)
            cached = self._listing.get(endpoint)
            if cached is not None and cached[0] == full_key:
                return cached[1]
        items = build(snapshot)
        with self._lock:
            self._listing[endpoint] = (full_key, items)
        return items

    def _snapshot(self) -> Snapshot:
        now = self.now()
        with self._lock:
            events = tuple(e for e in self._events if e.visible_at <= now)
            return Snapshot(now, events, tuple(self._deliveries))

    def _topup(self, amount: Decimal) -> JSON:
        now = self.now()
        transaction: JSON = {
            "amount_cents": int(amount * 100),
            "amount_currency": self.currency,
            "auto_recharge": False,
            "created_at": iso(now),
            "id": str(uuid.uuid4()),
            "processor_status": "submitted_for_settlement",
            "record_type": "transaction",
            "transaction_processing_type": "stored_payment",
        }
        with self._lock:
            if self._script is None:
                self._balance += amount
            else:
                self._script_offset += amount
            self._topups.append(amount)
            self._transactions.append(transaction)
        return copy.deepcopy(transaction)
