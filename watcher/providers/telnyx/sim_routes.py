"""The Telnyx simulator's endpoints: auth, routing, paging and filters, in Telnyx's shapes.

`TelnyxRoutes` is what `simkit`'s server asks: `handle` answers one recorded request
under `/v2` from a `SimAccount` (bearer key checked first; 405 for a known path with
another method, 404 otherwise), `error` writes Telnyx's error body for a status.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from watcher.providers.simkit import RecordedRequest, Response, as_utc
from watcher.providers.telnyx import sim_managed
from watcher.providers.telnyx.sim_account import SimAccount
from watcher.providers.telnyx.sim_charges import ChargesRangeError, parse_dates
from watcher.providers.telnyx.sim_records import CENT, DELIVERY_STATUSES, JSON, Snapshot, error_body

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 250

_AMOUNT_RE = re.compile(r"[0-9]+\.[0-9]{2}")


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def json_response(status: int, payload: JSON) -> Response:
    """`payload` as a JSON answer (the C encoder: the simulator serves big backlogs)."""
    return Response(status, json.dumps(payload).encode())


class _ApiError(Exception):
    """Aborts a request with a Telnyx error response."""

    def __init__(self, status: int, detail: str | None = None, *, code: str | None = None):
        super().__init__(detail)
        self.status = status
        self.body = error_body(status, detail=detail, code=code)


@dataclass(frozen=True, slots=True)
class _Page:
    number: int
    size: int


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise _ApiError(422, f"{name} must be an integer") from None


def _page(query: Mapping[str, str]) -> _Page:
    number = _int_param(query, "page[number]", 1)
    size = _int_param(query, "page[size]", DEFAULT_PAGE_SIZE)
    if number < 1:
        raise _ApiError(422, "page[number] must be at least 1")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _ApiError(422, f"page[size] must be between 1 and {MAX_PAGE_SIZE}")
    return _Page(number, size)


def _paginate(items: list[JSON], page: _Page) -> JSON:
    start = (page.number - 1) * page.size
    meta = {
        "page_number": page.number,
        "page_size": page.size,
        "total_pages": max(1, math.ceil(len(items) / page.size)),
        "total_results": len(items),
    }
    return {"data": items[start : start + page.size], "meta": meta}


def _time_param(query: Mapping[str, str], name: str) -> datetime | None:
    text = query.get(name)
    if text is None:
        return None
    try:  # an unencoded "+00:00" arrives as " 00:00"
        return as_utc(datetime.fromisoformat(text.strip().replace(" ", "+")))
    except ValueError:
        raise _ApiError(422, f"{name} must be an ISO 8601 date-time") from None


def _get_balance(account: SimAccount, request: RecordedRequest) -> JSON:
    value = account.balance()
    data = {
        "balance": _money(value.balance),
        "available_credit": _money(value.available_credit),
        "credit_limit": _money(value.credit_limit),
        "pending": _money(value.pending),
        "currency": value.currency,
        "record_type": "balance",
    }
    return {"data": data}


def _list_audit_events(account: SimAccount, request: RecordedRequest) -> JSON:
    query = request.query
    page = _page(query)
    after = _time_param(query, "filter[created_after]")
    before = _time_param(query, "filter[created_before]")
    order = query.get("sort", "desc")
    if order not in ("asc", "desc"):
        raise _ApiError(422, "sort must be asc or desc")

    def build(snapshot: Snapshot) -> list[JSON]:
        events = [
            e
            for e in snapshot.events
            if (after is None or e.created_at > after) and (before is None or e.created_at < before)
        ]
        events.sort(key=lambda e: (e.created_at, e.json["id"]), reverse=order == "desc")
        return [e.json for e in events]

    return _paginate(account._listed("audit", (after, before, order), build), page)


def _list_webhook_deliveries(account: SimAccount, request: RecordedRequest) -> JSON:
    query = request.query
    page = _page(query)
    status = query.get("filter[status][eq]")
    if status is not None and status not in DELIVERY_STATUSES:
        raise _ApiError(422, "filter[status][eq] must be delivered or failed")
    gte = _time_param(query, "filter[started_at][gte]")
    lte = _time_param(query, "filter[started_at][lte]")
    types_text = query.get("filter[event_type]")
    types = {t.strip() for t in types_text.split(",")} if types_text is not None else None

    def build(snapshot: Snapshot) -> list[JSON]:
        deliveries = [
            d
            for d in snapshot.deliveries
            if (status is None or d.json["status"] == status)
            and (gte is None or d.started_at >= gte)
            and (lte is None or d.started_at <= lte)
            and (types is None or d.json["webhook"]["event_type"] in types)
        ]
        deliveries.sort(key=lambda d: (d.started_at, d.json["id"]), reverse=True)
        return [d.json for d in deliveries]

    key = (status, gte, lte, None if types is None else tuple(sorted(types)))
    return _paginate(account._listed("webhooks", key, build), page)


def _get_auto_recharge_prefs(account: SimAccount, request: RecordedRequest) -> JSON:
    return {"data": account.auto_recharge_prefs()}


def _list_invoices(account: SimAccount, request: RecordedRequest) -> JSON:
    page = _page(request.query)
    order = request.query.get("sort")
    if order not in (None, "period_start", "-period_start"):
        raise _ApiError(400, "sort must be period_start or -period_start")
    invoices = account.invoices()
    if order is not None:
        invoices.sort(key=lambda i: (i["period_start"], i["invoice_id"]), reverse=order[0] == "-")
    return _paginate(invoices, page)


def _get_invoice(account: SimAccount, request: RecordedRequest) -> JSON:
    invoice_id = request.path.removeprefix(_INVOICE_PREFIX)
    found = [i for i in account.invoices() if i["invoice_id"] == invoice_id]
    if not found:
        raise _ApiError(404, "Invoice not found")
    return {"data": found[0]}


def _charges_summary(account: SimAccount, request: RecordedRequest) -> JSON:
    try:
        return account.charges.summary(*parse_dates(request.query, end_required=True))
    except ChargesRangeError as exc:
        raise _ApiError(exc.status, str(exc)) from None


def _charges_breakdown(account: SimAccount, request: RecordedRequest) -> JSON:
    if request.query.get("format", "json") != "json":
        raise _ApiError(400, "the simulator serves format=json only")
    try:
        return account.charges.breakdown(*parse_dates(request.query, end_required=False))
    except ChargesRangeError as exc:
        raise _ApiError(exc.status, str(exc)) from None


def _list_managed(account: SimAccount, request: RecordedRequest) -> JSON:
    return _paginate(sim_managed.list_items(account), _page(request.query))


def _get_managed(account: SimAccount, request: RecordedRequest) -> JSON:
    found = sim_managed.one(account, request.path.removeprefix(_MANAGED_PREFIX), account.now())
    if found is None:
        raise _ApiError(404, "Managed account not found")
    return {"data": found}


def _post_topup(account: SimAccount, request: RecordedRequest) -> JSON:
    try:
        payload = json.loads(request.body or b"null")
    except ValueError:
        raise _ApiError(400, "The request body is not valid JSON.") from None
    amount = payload.get("amount") if isinstance(payload, dict) else None
    if not isinstance(amount, str) or not _AMOUNT_RE.fullmatch(amount):
        raise _ApiError(422, 'Amount must include dollars and cents (e.g. "120.00").', code="10027")
    value = Decimal(amount)  # the pattern admits only plain decimals
    if value <= 0:
        raise _ApiError(422, "Amount must be greater than zero.", code="10027")
    return {"data": account._topup(value)}


_Endpoint = Callable[[SimAccount, RecordedRequest], JSON]
_ROUTES: dict[tuple[str, str], _Endpoint] = {
    ("GET", "/balance"): _get_balance,
    ("GET", "/audit_events"): _list_audit_events,
    ("GET", "/webhook_deliveries"): _list_webhook_deliveries,
    ("GET", "/payment/auto_recharge_prefs"): _get_auto_recharge_prefs,
    ("GET", "/invoices"): _list_invoices,
    ("GET", "/charges_summary"): _charges_summary,
    ("GET", "/charges_breakdown"): _charges_breakdown,
    ("GET", "/managed_accounts"): _list_managed,
    ("POST", "/payment/stored_payment_transactions"): _post_topup,
}
_KNOWN_PATHS = frozenset(path for _, path in _ROUTES)
_INVOICE_PREFIX = "/invoices/"  # GET /invoices/{id}
_MANAGED_PREFIX = "/managed_accounts/"  # GET /managed_accounts/{id}


class TelnyxRoutes:
    """The Telnyx endpoints of one account, or of several told apart by their API keys
    (`others`; a request with an unknown key goes to `account`), for
    `simkit.SimServerBase`."""

    def __init__(self, account: SimAccount, others: Sequence[SimAccount] = ()) -> None:
        self.account = account
        self._by_key = {other._api_key: other for other in others}

    def account_for(self, request: RecordedRequest) -> SimAccount:
        """The account whose API key the request's bearer token is."""
        if not self._by_key:
            return self.account
        _, _, token = (request.headers.get("authorization") or "").partition(" ")
        return self._by_key.get(token.strip(), self.account)

    def handle(self, request: RecordedRequest) -> Response:
        """The answer to a request under `/v2` (no fault): the endpoint's JSON or an error."""
        try:
            return _route(self.account_for(request), request)
        except _ApiError as exc:
            return json_response(exc.status, exc.body)

    def error(self, request: RecordedRequest, status: int, detail: str | None) -> Response:
        """A Telnyx error answer (`{"errors": [...]}`) for `status`."""
        return json_response(status, error_body(status, detail=detail))


def _route(account: SimAccount, request: RecordedRequest) -> Response:
    if not account._authorized(request.headers.get("authorization")):
        raise _ApiError(401)
    endpoint = _ROUTES.get((request.method, request.path))
    if endpoint is None and request.path.startswith(_INVOICE_PREFIX) and request.method == "GET":
        endpoint = _get_invoice
    if endpoint is None and request.path.startswith(_MANAGED_PREFIX) and request.method == "GET":
        endpoint = _get_managed
    if endpoint is not None:
        return json_response(200, endpoint(account, request))
    if request.path in _KNOWN_PATHS:
        raise _ApiError(405)
    raise _ApiError(404)
