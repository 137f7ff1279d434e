"""The Vonage simulator's endpoints and error shapes (see `sim` for the account).

Error shapes by host: rest.nexmo.com paths (`/account/...`) answer the legacy
`{"error-code", "error-code-label"}`; api.nexmo.com paths (`/accounts/...`,
`/beta/...`) answer RFC 7807 `{type, title, detail, instance}`, as
`application/problem+json` for secrets (the account spec) and `application/json` for
audit and subaccounts (their specs). Auth is checked before routing.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from watcher.providers.simkit import (
    ApiError,
    RecordedRequest,
    Response,
    as_utc,
    json_bytes,
)
from watcher.providers.vonage.sim_account import Secret, Subaccount, VonageSimAccount

JSON = dict[str, Any]
PROBLEM_TYPE = "application/problem+json"
DOCS = "https://developer.nexmo.com/api-errors"
AUDIT_PATH = "/beta/audit/events"
DEFAULT_AUDIT_SIZE = 30
MAX_AUDIT_SIZE = 100
QUERY_CREDENTIALS = ("api_key", "api_secret")

# status -> legacy label on rest.nexmo.com
_LABELS = {
    400: "bad request",
    401: "authentication failed",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    429: "too many requests",
    500: "internal error",
}
# status -> (type anchor, title, detail) of RFC 7807 bodies on api.nexmo.com
_PROBLEMS = {
    400: ("validation", "Bad Request", "The request failed due to validation errors"),
    401: (
        "unauthorized",
        "Invalid credentials supplied",
        "You did not provide correct credentials",
    ),
    403: ("unprovisioned", "Authorisation error", "Your account may not use this API"),
    404: ("not-found", "Not Found", "The requested resource does not exist"),
    405: ("method-not-allowed", "Method Not Allowed", "This method is not supported here"),
    429: ("rate-limit", "Too Many Requests", "You have exceeded the allowed request rate"),
    500: ("internal-error", "Internal Error", "An internal error occurred"),
}


def zulu(moment: datetime) -> str:
    """`created_at` of secrets and subaccounts: `2018-03-02T16:34:49Z` (whole seconds)."""
    return as_utc(moment).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def is_rest_path(path: str) -> bool:
    """Whether `path` belongs to rest.nexmo.com (`/account/...`), not api.nexmo.com."""
    return path.startswith("/account/")


def rest_error(status: int, label: str | None = None) -> Response:
    """A rest.nexmo.com error: `{"error-code": "401", "error-code-label": "..."}`."""
    body = {"error-code": str(status), "error-code-label": label or _LABELS.get(status, "error")}
    return _respond(status, body)


def problem(path: str, status: int, detail: str | None = None) -> Response:
    """An api.nexmo.com RFC 7807 error for `path`, in the content type its spec names."""
    anchor, title, default = _PROBLEMS.get(status, ("error", "Error", "An error occurred"))
    body = {
        "type": f"{DOCS}#{anchor}",
        "title": title,
        "detail": detail or default,
        "instance": uuid.uuid4().hex,
    }
    return _respond(status, body, PROBLEM_TYPE if "/secrets" in path else "application/json")


def _respond(status: int, payload: Any, content_type: str = "application/json") -> Response:
    headers = (("X-Request-Id", str(uuid.uuid4())),)
    return Response(status, json_bytes(payload), headers, content_type)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, sep, secret = text.partition(":")
    return (key, secret) if sep else None


def _int_param(request: RecordedRequest, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    try:
        value = default if text is None else int(text)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value


def _time_param(request: RecordedRequest, name: str) -> datetime | None:
    text = request.query.get(name)
    if not text:
        return None
    try:  # an unencoded "+00:00" arrives as " 00:00"
        return as_utc(datetime.fromisoformat(text.strip().replace(" ", "+")))
    except ValueError:
        raise ApiError(400, f"{name} must be an ISO 8601 date-time") from None


# --- rest.nexmo.com -----------------------------------------------------------------------


def get_balance(account: VonageSimAccount, request: RecordedRequest) -> Response:
    """`GET /account/get-balance`: `{"value": <exact Decimal>, "autoReload": bool}`."""
    return _respond(200, {"value": account.balance(), "autoReload": account.auto_reload})


def post_topup(account: VonageSimAccount, request: RecordedRequest) -> Response:
    """`POST /account/top-up` with form `trx`: 200 success body, or a legacy 401 / 400."""
    trx = dict(request.form()).get("trx")
    outcome = account._topup(trx, request.received_at)
    if outcome == "disabled":
        return rest_error(401, "not auto-reload enabled")
    if outcome == "bad-trx":
        return rest_error(400, "invalid transaction reference")
    return _respond(200, {"error-code": "200", "error-code-label": "success"})


def post_settings(account: VonageSimAccount, request: RecordedRequest) -> Response:
    """`POST /account/settings`: any field (form or query) changes settings; answer them."""
    query = [(k, v) for k, v in request.query_pairs if k not in QUERY_CREDENTIALS]
    fields = request.form() + query
    if fields:
        account._change_settings(fields, request.received_at)
    return _respond(200, account.settings())


# --- api.nexmo.com ------------------------------------------------------------------------


def _own_key(account: VonageSimAccount, key: str) -> None:
    if key != account.api_key:
        raise ApiError(404, f"API key '{key}' does not exist, or you do not have access")


def _secret_json(key: str, secret: Secret) -> JSON:
    href = f"/accounts/{key}/secrets/{secret.id}"
    return {
        "_links": {"self": {"href": href}},
        "id": secret.id,
        "created_at": zulu(secret.created_at),
    }


def list_secrets(account: VonageSimAccount, request: RecordedRequest, key: str) -> Response:
    """`GET /accounts/{api_key}/secrets`: HAL `_embedded.secrets[]{id, created_at}`."""
    _own_key(account, key)
    items = [_secret_json(key, s) for s in account.secrets()]
    links = {"self": {"href": f"/accounts/{key}/secrets"}}
    return _respond(200, {"_links": links, "_embedded": {"secrets": items}})


def get_secret(
    account: VonageSimAccount, request: RecordedRequest, key: str, secret_id: str
) -> Response:
    """`GET /accounts/{api_key}/secrets/{secret_id}`: one secret, or 404."""
    _own_key(account, key)
    for secret in account.secrets():
        if secret.id == secret_id:
            return _respond(200, _secret_json(key, secret))
    raise ApiError(404, f"Secret '{secret_id}' does not exist")


def _subaccount_json(primary: str, sub: Subaccount) -> JSON:
    shared = sub.use_primary_account_balance
    return {
        "api_key": sub.api_key,
        "primary_account_api_key": primary,
        "name": sub.name,
        "balance": None if shared else sub.balance,
        "credit_limit": None if shared else sub.credit_limit,
        "suspended": sub.suspended,
        "use_primary_account_balance": shared,
        "created_at": zulu(sub.created_at),
    }


def _primary_json(account: VonageSimAccount) -> JSON:
    return {
        "api_key": account.api_key,
        "name": account.primary_name,
        "balance": account.balance(),
        "credit_limit": account.primary_credit_limit,
        "suspended": False,
        "use_primary_account_balance": False,
        "created_at": zulu(account.created_at),
    }


def list_subaccounts(account: VonageSimAccount, request: RecordedRequest, key: str) -> Response:
    """`GET /accounts/{api_key}/subaccounts`: totals, the primary and the subaccounts."""
    _own_key(account, key)
    if not account.subaccounts_enabled:
        detail = f"Account {key} is not provisioned to access Subaccount Provisioning API"
        raise ApiError(403, detail)
    subs = account.subaccounts()
    own = [s for s in subs if not s.use_primary_account_balance]
    body = {
        "total_balance": account.balance() + sum((s.balance for s in own), start=Decimal(0)),
        "total_credit_limit": account.primary_credit_limit
        + sum((s.credit_limit for s in own), start=Decimal(0)),
        "_embedded": {
            "primary_account": _primary_json(account),
            "subaccounts": [_subaccount_json(key, s) for s in subs],
        },
    }
    return _respond(200, body)


def _audit_forbidden(account: VonageSimAccount) -> None:
    if not account.audit_enabled:
        raise ApiError(403, f"Account {account.api_key} is not enabled for the Audit API beta")


def _event_json(request: RecordedRequest, event: JSON) -> JSON:
    href = f"{_origin(request)}{AUDIT_PATH}/{event['id']}"
    return {**event, "_links": {"self": {"href": href}}}


def _origin(request: RecordedRequest) -> str:
    return f"http://{request.headers.get('host', 'api.nexmo.com')}"


def _page_link(request: RecordedRequest, page: int) -> JSON:
    query = {**request.query, "page": str(page)}
    return {"href": f"{_origin(request)}{AUDIT_PATH}?{urlencode(query)}"}


def _matches(event: JSON, request: RecordedRequest) -> bool:
    wanted = request.query.get("event_type")
    text = request.query.get("search_text")
    typed = not wanted or event["event_type"] == wanted
    return typed and (not text or text in json_bytes(event).decode())


def list_audit_events(account: VonageSimAccount, request: RecordedRequest) -> Response:
    """`GET /beta/audit/events`: filtered by `date_from` / `date_to` (inclusive),
    `event_type` and `search_text`, oldest first, pages numbered from 1."""
    _audit_forbidden(account)
    size = _int_param(request, "size", DEFAULT_AUDIT_SIZE, 1, MAX_AUDIT_SIZE)
    number = _int_param(request, "page", 1, 1, 10**9)
    since, until = _time_param(request, "date_from"), _time_param(request, "date_to")
    events = [
        e.json
        for e in account.visible_audit_events()
        if (since is None or e.created_at >= since) and (until is None or e.created_at <= until)
    ]
    events = [e for e in events if _matches(e, request)]
    pages = math.ceil(len(events) / size)
    shown = events[(number - 1) * size : number * size]
    links = {"self": _page_link(request, number), "last": _page_link(request, max(pages, 1))}
    if number < pages:
        links["next"] = _page_link(request, number + 1)
    body = {
        "_links": links,
        "_embedded": {"events": [_event_json(request, e) for e in shown]},
        "page": {"size": size, "totalElements": len(events), "totalPages": pages, "number": number},
    }
    return _respond(200, body)


def get_audit_event(account: VonageSimAccount, request: RecordedRequest, id: str) -> Response:
    """`GET /beta/audit/events/{id}`: one event, or 404."""
    _audit_forbidden(account)
    for event in account.visible_audit_events():
        if event.json["id"] == id:
            return _respond(200, _event_json(request, event.json))
    raise ApiError(404, f"Event with provided id: {id} was not found")


# --- routing ------------------------------------------------------------------------------

Endpoint = Callable[..., Response]
_ROUTES: tuple[tuple[re.Pattern[str], dict[str, Endpoint]], ...] = (
    (re.compile(r"/account/get-balance"), {"GET": get_balance}),
    (re.compile(r"/account/top-up"), {"POST": post_topup}),
    (re.compile(r"/account/settings"), {"POST": post_settings}),
    (re.compile(r"/accounts/([^/]+)/secrets"), {"GET": list_secrets}),
    (re.compile(r"/accounts/([^/]+)/secrets/([^/]+)"), {"GET": get_secret}),
    (re.compile(r"/accounts/([^/]+)/subaccounts"), {"GET": list_subaccounts}),
    (re.compile(AUDIT_PATH), {"GET": list_audit_events}),
    (re.compile(AUDIT_PATH + r"/([^/]+)"), {"GET": get_audit_event}),
)


def _route(request: RecordedRequest) -> tuple[Endpoint, tuple[str, ...]]:
    """The endpoint and path arguments for a request. Raises ApiError 404 / 405."""
    for pattern, methods in _ROUTES:
        match = pattern.fullmatch(request.path)
        if match is None:
            continue
        endpoint = methods.get(request.method)
        if endpoint is None:
            raise ApiError(405)
        return endpoint, match.groups()
    raise ApiError(404)


class VonageRoutes:
    """The simulator's `simkit.Routes`: auth (HTTP Basic only), routing, error shapes.

    A request with `api_key` / `api_secret` in the query is noted on the account (see
    `query_credentials`) and otherwise treated like any other: only Basic auth counts.
    """

    def __init__(self, account: VonageSimAccount) -> None:
        self.account = account

    def handle(self, request: RecordedRequest) -> Response:
        """Check the credentials, route, answer; raises ApiError for errors."""
        if any(name in request.query for name in QUERY_CREDENTIALS):
            self.account._note_query_credentials(request)
        credentials = _basic_credentials(request.headers.get("authorization"))
        if credentials is None or not self.account._authorized(*credentials):
            raise ApiError(401)
        endpoint, args = _route(request)
        return endpoint(self.account, request, *args)

    def error(self, request: RecordedRequest, status: int, detail: str | None) -> Response:
        """An error in the shape of the request's host (legacy on rest, RFC 7807 on api)."""
        if is_rest_path(request.path):
            return rest_error(status, detail)
        return problem(request.path, status, detail)
