"""The Telnyx simulator: a real HTTP server on loopback, checked against the vendored spec."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from watcher.providers.telnyx.sim import Fault, SimAccount, SimServer, free_port, iso

KEY = "test-key"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPEC: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "data" / "telnyx-account.openapi.yaml").read_text()
)
ERRORS_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}
AUTH = {"Authorization": f"Bearer {KEY}"}
TLS = ssl.create_default_context()  # loaded once: a new httpx client would load it each time


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request with a throwaway client (own connection and timeout)."""
    return httpx.request(method, url, verify=TLS, **kwargs)


# --- a minimal validator for the spec's JSON schemas --------------------------------------


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _type_ok(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Problems of `value` against a spec schema: types, enums, required, unknown keys."""
    schema = _resolve(schema)
    for key in ("anyOf", "oneOf"):
        if key in schema and all(schema_errors(value, s, where) for s in schema[key]):
            return [f"{where}: matches none of {key}"]
    types = schema.get("type")
    names = [types] if isinstance(types, str) else types or []
    if names and not any(_type_ok(value, n) for n in names):
        return [f"{where}: {value!r} is not {names}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    if isinstance(value, dict):
        return _object_errors(value, schema, where)
    if isinstance(value, list) and "items" in schema:
        return [
            e
            for i, v in enumerate(value)
            for e in schema_errors(v, schema["items"], f"{where}[{i}]")
        ]
    return []


def _object_errors(value: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    props: dict[str, Any] = schema.get("properties", {})
    errors = [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
    if props and not schema.get("additionalProperties"):
        errors += [f"{where}: unknown key {k}" for k in value if k not in props]
    for key, sub in props.items():
        if key in value:
            errors += schema_errors(value[key], sub, f"{where}.{key}")
    return errors


def response_schema(path: str, method: str, status: str) -> dict[str, Any]:
    response = _resolve(SPEC["paths"][path][method]["responses"][status])
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def assert_spec_shape(payload: Any, path: str, method: str = "get", status: str = "200") -> None:
    assert schema_errors(payload, response_schema(path, method, status)) == []


def test_validator_catches_wrong_shapes() -> None:
    schema = response_schema("/balance", "get", "200")
    assert schema_errors({"data": {"balance": 1.5}}, schema) != []
    assert schema_errors({"data": {"record_type": "nope"}}, schema) != []
    assert schema_errors({"data": {"balanse": "1.00"}}, schema) != []
    assert schema_errors({"data": {"balance": "1.00", "record_type": "balance"}}, schema) == []


# --- fixtures -----------------------------------------------------------------------------


@dataclass
class FakeClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def account(clock: FakeClock) -> SimAccount:
    return SimAccount(api_key=KEY, clock=clock)


@pytest.fixture
def sim(account: SimAccount) -> Iterator[SimServer]:
    with SimServer(account) as server:
        yield server
    assert server.handler_errors == []


@pytest.fixture
def client(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, headers=AUTH, timeout=2.0, verify=TLS) as c:
        yield c


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert schema_errors(body, ERRORS_SCHEMA) == []
    code: str = body["errors"][0]["code"]
    return code


# --- server lifecycle ---------------------------------------------------------------------


def test_base_url_is_loopback_v2_and_stop_closes_the_port(account: SimAccount) -> None:
    server = SimServer(account)
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v2"
        assert request("GET", f"{server.base_url}/balance", headers=AUTH).is_success
        port = server.port
    with pytest.raises(httpx.ConnectError):
        request("GET", f"http://127.0.0.1:{port}/v2/balance", timeout=1.0)
    server.stop()  # a second stop is harmless


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# --- balance ------------------------------------------------------------------------------


def test_balance_serves_two_decimal_strings(account: SimAccount, client: httpx.Client) -> None:
    account.set_balance("123.4", credit_limit=Decimal("50"), pending="1.5")

    response = client.get("/balance")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert_spec_shape(body, "/balance")
    assert body["data"] == {
        "balance": "123.40",
        "available_credit": "173.40",
        "credit_limit": "50.00",
        "pending": "1.50",
        "currency": "USD",
        "record_type": "balance",
    }
    parsed = json.loads(response.text, parse_float=Decimal)["data"]
    assert Decimal(parsed["available_credit"]) == Decimal("173.40")


def test_balance_script_follows_the_clock_and_keeps_topups(
    account: SimAccount, clock: FakeClock, client: httpx.Client
) -> None:
    account.set_balance_script(lambda now: Decimal(100) - Decimal((now - T0).seconds // 60))

    first = client.get("/balance").json()["data"]["balance"]
    clock.advance(minutes=30)
    later = client.get("/balance").json()["data"]["balance"]
    client.post("/payment/stored_payment_transactions", json={"amount": "25.00"})
    topped = client.get("/balance").json()["data"]["balance"]

    assert (first, later, topped) == ("100.00", "70.00", "95.00")
    account.set_balance_script(None)
    clock.advance(minutes=30)
    assert client.get("/balance").json()["data"]["balance"] == "95.00"


# --- authentication and routing -----------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong-key", "wrong-scheme", "empty"],
)
def test_requests_without_the_key_get_401(
    sim: SimServer, account: SimAccount, headers: dict[str, str]
) -> None:
    response = request("GET", f"{sim.base_url}/balance", headers=headers)

    assert response.status_code == 401
    assert error_code(response) == "10009"
    assert account.request_count("/balance") == 1


def test_revoked_key_gets_401_everywhere(account: SimAccount, client: httpx.Client) -> None:
    assert client.get("/balance").status_code == 200
    account.revoke_key()

    statuses = [
        client.get(p).status_code for p in ("/balance", "/audit_events", "/webhook_deliveries")
    ]
    post = client.post("/payment/stored_payment_transactions", json={"amount": "10.00"})

    assert statuses == [401, 401, 401]
    assert (post.status_code, error_code(post)) == (401, "10009")
    assert account.topups == []


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", "/v2/nothing_here", 404),
        ("GET", "/balance", 404),
        ("POST", "/v2/v2/payment/stored_payment_transactions", 404),
        ("DELETE", "/v2/balance", 405),
        ("GET", "/v2/payment/stored_payment_transactions", 405),
    ],
)
def test_unknown_paths_and_methods_get_error_bodies(
    sim: SimServer, account: SimAccount, method: str, url: str, status: int
) -> None:
    origin = sim.base_url.removesuffix("/v2")

    response = request(method, origin + url, headers=AUTH, json={"amount": "100.00"})

    assert response.status_code == status
    assert error_code(response)
    assert account.topups == []


def test_doubled_v2_topup_path_is_404_and_pays_nothing(
    account: SimAccount, client: httpx.Client
) -> None:
    response = client.post("/v2/payment/stored_payment_transactions", json={"amount": "100.00"})

    assert response.status_code == 404
    assert account.topups == []
    assert account.balance().balance == Decimal("500.00")
    assert account.requests[-1].path == "/v2/payment/stored_payment_transactions"


# --- audit events -------------------------------------------------------------------------


def _add_events(account: SimAccount, count: int) -> list[str]:
    return [
        account.add_audit_event(created_at=T0 - timedelta(seconds=count - i))["id"]
        for i in range(count)
    ]


def test_audit_events_page_through_a_thousand_events(
    account: SimAccount, client: httpx.Client
) -> None:
    ids = _add_events(account, 1000)
    seen: list[str] = []
    metas = []
    for number in range(1, 6):
        params: dict[str, str | int] = {"sort": "asc", "page[number]": number, "page[size]": 250}
        body = client.get("/audit_events", params=params).json()
        assert_spec_shape(body, "/audit_events")
        seen += [e["id"] for e in body["data"]]
        metas.append(body["meta"])

    assert seen == ids
    assert metas[0] == {"page_number": 1, "page_size": 250, "total_pages": 4, "total_results": 1000}
    assert metas[4]["page_number"] == 5
    assert metas[4]["total_pages"] == 4


def test_audit_events_default_to_newest_first_and_twenty_per_page(
    account: SimAccount, client: httpx.Client
) -> None:
    ids = _add_events(account, 30)

    body = client.get("/audit_events").json()

    assert [e["id"] for e in body["data"]] == ids[::-1][:20]
    assert body["meta"] == {
        "page_number": 1,
        "page_size": 20,
        "total_pages": 2,
        "total_results": 30,
    }


def test_audit_event_json_has_the_spec_fields(account: SimAccount, client: httpx.Client) -> None:
    changes = [{"field": "webhook_url", "from": "https://a.example", "to": None}]
    served = account.add_audit_event(
        created_at=T0 - timedelta(microseconds=1500),
        change_made_by="organization_member",
        user_id="u-1",
        resource_id="r-1",
        alternate_resource_id="+14155551234",
        changes=changes,
        id="e-1",
    )

    event = client.get("/audit_events").json()["data"][0]

    assert event == served
    assert event["created_at"] == "2026-03-01T11:59:59.998500Z"
    assert (event["record_type"], event["change_type"], event["changes"]) == (
        "audit_event",
        "update",
        changes,
    )
    assert set(event) == set(_resolve(SPEC["components"]["schemas"]["AuditLog"])["properties"])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"filter[created_after]": iso(T0 - timedelta(seconds=3))}, [1, 2]),
        ({"filter[created_after]": "2026-03-01T13:59:57+02:00"}, [1, 2]),
        ({"filter[created_before]": iso(T0 - timedelta(seconds=3))}, [4, 5]),
        (
            {
                "filter[created_after]": iso(T0 - timedelta(seconds=5)),
                "filter[created_before]": iso(T0 - timedelta(seconds=1)),
            },
            [2, 3, 4],
        ),
        ({"sort": "asc", "page[size]": 2, "page[number]": 2}, [3, 2]),
    ],
    ids=["after-is-strict", "after-with-offset", "before-is-strict", "window", "asc-page-2"],
)
def test_audit_filters_and_sort(
    account: SimAccount, client: httpx.Client, params: dict[str, Any], expected: list[int]
) -> None:
    by_id = {
        account.add_audit_event(created_at=T0 - timedelta(seconds=s))["id"]: s for s in range(1, 6)
    }

    body = client.get("/audit_events", params=params).json()

    assert [by_id[e["id"]] for e in body["data"]] == expected


def test_audit_events_appear_once_the_clock_reaches_visible_at(
    account: SimAccount, clock: FakeClock, client: httpx.Client
) -> None:
    account.add_audit_event(
        created_at=T0 - timedelta(minutes=5), visible_at=T0 + timedelta(minutes=2)
    )
    account.add_audit_event(created_at=T0 - timedelta(minutes=1))

    before = client.get("/audit_events").json()
    clock.advance(minutes=2)
    after = client.get("/audit_events").json()

    assert before["meta"]["total_results"] == 1
    assert after["meta"]["total_results"] == 2
    assert after["data"][1]["created_at"] == "2026-03-01T11:55:00Z"


def test_empty_listing_has_one_page(client: httpx.Client) -> None:
    for path in ("/audit_events", "/webhook_deliveries"):
        body = client.get(path, params={"page[number]": 3}).json()
        assert body == {
            "data": [],
            "meta": {"page_number": 3, "page_size": 20, "total_pages": 1, "total_results": 0},
        }


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/audit_events", {"page[size]": 251}),
        ("/audit_events", {"page[number]": 0}),
        ("/audit_events", {"page[size]": "ten"}),
        ("/audit_events", {"sort": "sideways"}),
        ("/audit_events", {"filter[created_after]": "yesterday"}),
        ("/webhook_deliveries", {"page[size]": 251}),
        ("/webhook_deliveries", {"page[size]": 0}),
        ("/webhook_deliveries", {"filter[status][eq]": "pending"}),
        ("/webhook_deliveries", {"filter[started_at][gte]": "soon"}),
    ],
)
def test_invalid_list_parameters_get_422(
    client: httpx.Client, path: str, params: dict[str, Any]
) -> None:
    response = client.get(path, params=params)

    assert response.status_code == 422
    assert error_code(response)


# --- webhook deliveries -------------------------------------------------------------------


@pytest.fixture
def deliveries(account: SimAccount) -> dict[str, int]:
    """Six deliveries, minutes 1..6 before T0; returns id -> minutes ago."""
    specs = [
        ("failed", "message.finalized"),
        ("delivered", "message.finalized"),
        ("failed", "call.initiated"),
        ("failed", "message.sent"),
        ("delivered", "call.initiated"),
        ("failed", "message.finalized"),
    ]
    return {
        account.add_webhook_delivery(
            status=status, event_type=event_type, started_at=T0 - timedelta(minutes=minutes)
        )["id"]: minutes
        for minutes, (status, event_type) in enumerate(specs, start=1)
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [1, 2, 3, 4, 5, 6]),
        ({"filter[status][eq]": "failed"}, [1, 3, 4, 6]),
        ({"filter[status][eq]": "delivered"}, [2, 5]),
        ({"filter[started_at][gte]": iso(T0 - timedelta(minutes=3))}, [1, 2, 3]),
        ({"filter[started_at][lte]": iso(T0 - timedelta(minutes=5))}, [5, 6]),
        ({"filter[event_type]": "message.finalized,call.initiated"}, [1, 2, 3, 5, 6]),
        (
            {
                "filter[status][eq]": "failed",
                "filter[event_type]": "message.finalized",
                "filter[started_at][gte]": iso(T0 - timedelta(minutes=6)),
                "sort": "asc",
            },
            [1, 6],
        ),
    ],
    ids=["all", "failed", "delivered", "gte-inclusive", "lte-inclusive", "event-types", "combined"],
)
def test_webhook_filters_newest_first(
    client: httpx.Client, deliveries: dict[str, int], params: dict[str, str], expected: list[int]
) -> None:
    body = client.get("/webhook_deliveries", params=params).json()

    assert_spec_shape(body, "/webhook_deliveries")
    assert [deliveries[d["id"]] for d in body["data"]] == expected
    assert body["meta"]["total_results"] == len(expected)


def test_webhook_total_results_with_page_size_one(
    client: httpx.Client, deliveries: dict[str, int]
) -> None:
    body = client.get("/webhook_deliveries", params={"page[size]": 1}).json()

    assert len(body["data"]) == 1
    assert body["meta"] == {"page_number": 1, "page_size": 1, "total_pages": 6, "total_results": 6}


def test_failed_delivery_attempt_carries_url_status_and_error(
    account: SimAccount, client: httpx.Client
) -> None:
    account.add_webhook_delivery(
        url="https://hooks.example.com/a",
        http_status=502,
        error_detail="Bad gateway",
        started_at=T0,
    )

    delivery = client.get("/webhook_deliveries").json()["data"][0]

    assert_spec_shape({"data": [delivery]}, "/webhook_deliveries")
    attempt = delivery["attempts"][0]
    assert (delivery["status"], delivery["webhook"]["event_type"]) == (
        "failed",
        "message.finalized",
    )
    assert attempt["http"]["request"]["url"] == "https://hooks.example.com/a"
    assert attempt["http"]["response"]["status"] == 502
    assert attempt["http"]["response"]["body"] == "Bad gateway"
    assert attempt["errors"] == [75499]
    assert delivery["started_at"] == "2026-03-01T12:00:00Z"


def test_unreachable_delivery_has_an_error_object_and_no_response(
    account: SimAccount, client: httpx.Client
) -> None:
    account.add_webhook_delivery(http_status=None, error_detail="DNS lookup failed")

    attempt = client.get("/webhook_deliveries").json()["data"][0]["attempts"][0]

    assert "response" not in attempt["http"]
    assert attempt["errors"] == [
        {"code": "75001", "title": "Could not deliver", "detail": "DNS lookup failed"}
    ]


def test_delivered_attempt_answers_200(account: SimAccount) -> None:
    delivery = account.add_webhook_delivery(status="delivered")

    assert delivery["attempts"][0]["http"]["response"]["status"] == 200
    assert "errors" not in delivery["attempts"][0]
    with pytest.raises(ValueError, match="status"):
        account.add_webhook_delivery(status="pending")


# --- auto-recharge prefs and top-ups ------------------------------------------------------


def test_auto_recharge_prefs(account: SimAccount, client: httpx.Client) -> None:
    body = client.get("/payment/auto_recharge_prefs").json()
    account.set_auto_recharge(enabled=True, threshold_amount="20.00")
    changed = client.get("/payment/auto_recharge_prefs").json()["data"]

    assert_spec_shape(body, "/payment/auto_recharge_prefs")
    assert body["data"]["enabled"] is False
    assert body["data"]["record_type"] == "auto_recharge_pref"
    assert body["data"]["preference"] == "credit_paypal"
    assert Decimal(body["data"]["recharge_amount"]) == Decimal("100.00")
    assert (changed["enabled"], changed["threshold_amount"]) == (True, "20.00")


def test_topup_pays_and_answers_a_transaction(account: SimAccount, client: httpx.Client) -> None:
    account.set_balance("10.00", credit_limit="5.00")

    response = client.post("/payment/stored_payment_transactions", json={"amount": "100.00"})

    assert response.status_code == 200
    body = response.json()
    assert_spec_shape(body, "/payment/stored_payment_transactions", "post")
    data = body["data"]
    assert (data["amount_cents"], data["amount_currency"]) == (10000, "USD")
    assert (data["processor_status"], data["auto_recharge"]) == ("submitted_for_settlement", False)
    assert data["transaction_processing_type"] == "stored_payment"
    assert data["created_at"] == "2026-03-01T12:00:00Z"
    assert account.topups == [Decimal("100.00")]
    assert account.transactions == [data]
    assert client.get("/balance").json()["data"]["available_credit"] == "115.00"


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({"amount": "100"}),
        json.dumps({"amount": "100.0"}),
        json.dumps({"amount": "1e2"}),
        json.dumps({"amount": "-5.00"}),
        json.dumps({"amount": "0.00"}),
        json.dumps({"amount": "١٠٠.٠٠"}),
        json.dumps({"amount": 100.00}),
        json.dumps({}),
        json.dumps(["100.00"]),
    ],
)
def test_topup_refuses_bad_amounts_with_10027(
    account: SimAccount, client: httpx.Client, content: str
) -> None:
    response = client.post(
        "/payment/stored_payment_transactions",
        content=content,
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert error_code(response) == "10027"
    assert account.topups == []
    assert account.balance().balance == Decimal("500.00")


def test_topup_with_a_body_that_is_not_json_is_400(
    account: SimAccount, client: httpx.Client
) -> None:
    response = client.post("/payment/stored_payment_transactions", content=b"amount=100.00")

    assert response.status_code == 400
    assert account.topups == []


def test_concurrent_topups_all_count(account: SimAccount, sim: SimServer) -> None:
    account.set_balance("0.00")

    def pay() -> None:
        url = f"{sim.base_url}/payment/stored_payment_transactions"
        request("POST", url, json={"amount": "1.25"}, headers=AUTH).raise_for_status()

    threads = [threading.Thread(target=pay) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert account.balance().balance == Decimal("20.00")
    assert len(account.topups) == 16


# --- faults -------------------------------------------------------------------------------


def test_429_fault_has_retry_after_and_code_10011(
    account: SimAccount, client: httpx.Client
) -> None:
    account.inject_fault("/balance", Fault.status(429))

    response = client.get("/balance")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-ratelimit-reset"] == "1"
    assert error_code(response) == "10011"
    assert schema_errors(response.json(), response_schema("/balance", "get", "429")) == []


@pytest.mark.parametrize(
    ("fault", "status", "headers", "code"),
    [
        (Fault.status(500), 500, {}, "10007"),
        (Fault.status(503), 503, {}, "10008"),
        (
            Fault.status(429, headers={"x-ratelimit-reset": "7"}),
            429,
            {"x-ratelimit-reset": "7", "retry-after": None},
            "10011",
        ),
        (Fault.status(402, body={"errors": [{"code": "x1", "title": "t"}]}), 402, {}, "x1"),
    ],
    ids=["500", "503", "429-custom-headers", "custom-body"],
)
def test_status_faults_answer_once(
    account: SimAccount,
    client: httpx.Client,
    fault: Fault,
    status: int,
    headers: dict[str, str | None],
    code: str,
) -> None:
    account.inject_fault("/audit_events", fault)

    response = client.get("/audit_events")

    assert response.status_code == status
    assert {k: response.headers.get(k) for k in headers} == headers
    assert error_code(response) == code
    assert client.get("/audit_events").status_code == 200


def test_malformed_fault_is_200_with_invalid_json(
    account: SimAccount, client: httpx.Client
) -> None:
    account.inject_fault("/webhook_deliveries", Fault.malformed())

    response = client.get("/webhook_deliveries")

    assert response.status_code == 200
    assert response.text == '{"data": ['
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_disconnect_fault_drops_the_connection(account: SimAccount, client: httpx.Client) -> None:
    account.inject_fault("/payment/stored_payment_transactions", Fault.disconnect())

    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/payment/stored_payment_transactions", json={"amount": "100.00"})

    assert account.topups == []
    assert account.request_count("/payment/stored_payment_transactions") == 1
    assert client.get("/balance").status_code == 200


def test_delay_fault_trips_a_client_timeout_then_answers(
    account: SimAccount, sim: SimServer
) -> None:
    account.inject_fault("/balance", Fault.delay(0.5))
    account.inject_fault("/balance", Fault.delay(0.05))

    with pytest.raises(httpx.ReadTimeout):
        request("GET", f"{sim.base_url}/balance", headers=AUTH, timeout=0.1)
    started = time.monotonic()
    slow = request("GET", f"{sim.base_url}/balance", headers=AUTH, timeout=2.0)

    assert slow.status_code == 200
    assert time.monotonic() - started >= 0.05


def test_faults_count_down_queue_up_and_stay_on_their_path(
    account: SimAccount, client: httpx.Client
) -> None:
    account.inject_fault("/balance", Fault.status(503), times=2)
    account.inject_fault("/balance", Fault.status(429))

    statuses = [client.get("/balance").status_code for _ in range(4)]
    other = client.get("/audit_events").status_code

    assert statuses == [503, 503, 429, 200]
    assert other == 200


def test_fault_until_cleared(account: SimAccount, client: httpx.Client) -> None:
    account.inject_fault("/balance", Fault.status(500), times=-1)

    statuses = [client.get("/balance").status_code for _ in range(5)]
    account.clear_faults()

    assert statuses == [500] * 5
    assert client.get("/balance").status_code == 200
    assert account.request_count("/balance") == 6
    with pytest.raises(ValueError, match="times"):
        account.inject_fault("/balance", Fault.status(500), times=0)


# --- recording ----------------------------------------------------------------------------


def test_requests_are_recorded_with_raw_query_keys_headers_and_body(
    account: SimAccount, clock: FakeClock, client: httpx.Client
) -> None:
    after = iso(T0 - timedelta(minutes=10))
    client.get("/audit_events", params={"filter[created_after]": after, "sort": "asc"})
    clock.advance(seconds=5)
    client.post(
        "/payment/stored_payment_transactions", json={"amount": "100.00"}, headers={"X-Trace": "t1"}
    )

    get, post = account.requests

    assert (get.method, get.path, get.raw_path) == ("GET", "/audit_events", "/v2/audit_events")
    assert get.query == {"filter[created_after]": after, "sort": "asc"}
    assert get.headers["authorization"] == f"Bearer {KEY}"
    assert (post.method, post.body, post.headers["x-trace"]) == (
        "POST",
        b'{"amount":"100.00"}',
        "t1",
    )
    assert post.received_at == T0 + timedelta(seconds=5)
    assert KEY not in repr(post)


def test_request_count_and_copies(account: SimAccount, client: httpx.Client) -> None:
    for path in ("/balance", "/balance", "/audit_events"):
        client.get(path)
    client.post("/balance")
    snapshot = account.requests
    snapshot.clear()

    assert account.request_count() == 4
    assert account.request_count("/balance") == 3
    assert account.request_count("/balance", method="GET") == 2
    assert account.request_count("/webhook_deliveries") == 0
    assert len(account.requests) == 4
