"""Shared by the Vonage simulator tests: constants, spec validation, fixtures, error checks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from watcher.providers.vonage.sim import VonageSimAccount, VonageSimServer

KEY, SECRET = "abcd1234", "Secret-One-1"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
DATA = Path(__file__).parent / "data"
TRX = "8ef2447e69604f642ae59363aa5f781b"
BALANCE, TOPUP, SETTINGS = "/account/get-balance", "/account/top-up", "/account/settings"
SECRETS, SUBS = f"/accounts/{KEY}/secrets", f"/accounts/{KEY}/subaccounts"
AUDIT, EVIL = "/beta/audit/events", "https://evil.example/mo"
# (method, path) of every route, and whether its host is rest.nexmo.com
ROUTES = [
    ("GET", BALANCE, True),
    ("POST", TOPUP, True),
    ("POST", SETTINGS, True),
    ("GET", SECRETS, False),
    ("GET", SUBS, False),
    ("GET", AUDIT, False),
]
NAIVE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
ZULU_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def load_spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((DATA / f"vonage-{name}.openapi.yaml").read_text())
    return spec


# The specs' known faults (PITFALLS, Vonage), patched in memory only: subaccount balance and
# credit_limit are null when shared; AuditEvent.context's oneOf matches ambiguously.
SPECS = {name: load_spec(name) for name in ("account", "audit", "subaccounts")}
_SUB = SPECS["subaccounts"]["components"]["schemas"]["SubaccountResponse"]["properties"]
for _field in ("balance", "credit_limit"):
    _SUB[_field]["type"] = ["number", "null"]
del SPECS["audit"]["components"]["schemas"]["AuditEvent"]["properties"]["context"]["oneOf"]


def validate(spec: str, pointer: str, instance: Any) -> None:
    """Validate `instance` against the schema at `pointer` (a JSON pointer) of a spec."""
    root = {"$ref": pointer, "components": SPECS[spec]["components"]}
    jsonschema.Draft7Validator(root).validate(instance)


@pytest.fixture
def account() -> VonageSimAccount:
    return VonageSimAccount(api_key=KEY, api_secret=SECRET, clock=lambda: T0, trx=TRX)


@pytest.fixture
def server(account: VonageSimAccount) -> Iterator[VonageSimServer]:
    with VonageSimServer(account) as running:
        yield running
        assert running.handler_errors == []


@pytest.fixture
def client(server: VonageSimServer) -> Iterator[httpx.Client]:
    headers = {"Accept": "application/json"}
    with httpx.Client(base_url=server.url, auth=(KEY, SECRET), headers=headers) as c:
        yield c


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return client.request(method, path, **kwargs)


def assert_host_error(response: httpx.Response, status: int, rest: bool) -> dict[str, Any]:
    """The error is in the shape of its host: legacy on rest, RFC 7807 on api."""
    assert response.status_code == status
    body: dict[str, Any] = response.json()
    if rest:
        assert body["error-code"] == str(status) and body["error-code-label"]
        assert response.headers["content-type"] == "application/json"
    else:
        assert {"type", "title", "detail", "instance"} <= body.keys()
        assert body["type"].startswith("https://developer.nexmo.com/api-errors#")
        validate("account", "#/components/schemas/ErrorResponse", body)
    return body
