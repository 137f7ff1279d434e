"""The Vonage simulator: auth, routing, recording, injected faults and the kit's pieces."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from vonage_sim_support import (
    AUDIT,
    BALANCE,
    KEY,
    ROUTES,
    SECRET,
    SECRETS,
    T0,
    TOPUP,
    TRX,
    account,
    assert_host_error,
    call,
    client,
    server,
)

from watcher.providers.simkit import Fault, RateLimit, json_bytes
from watcher.providers.vonage.sim import VonageSimAccount, VonageSimServer

__all__ = ["account", "client", "server"]  # fixtures

# --- auth ---------------------------------------------------------------------------------

BAD_AUTH: list[tuple[str, Any]] = [
    ("missing", None),
    ("wrong secret", (KEY, "nope")),
    ("wrong key", ("other", SECRET)),
    ("bearer", {"Authorization": f"Bearer {SECRET}"}),
    ("garbage basic", {"Authorization": "Basic !!!"}),
]


@pytest.mark.parametrize(("method", "path", "rest"), ROUTES)
@pytest.mark.parametrize(("case", "auth"), BAD_AUTH, ids=[c for c, _ in BAD_AUTH])
def test_bad_credentials_are_401_in_the_host_shape(
    server: VonageSimServer, method: str, path: str, rest: bool, case: str, auth: Any
) -> None:
    headers = auth if isinstance(auth, dict) else None
    basic = auth if isinstance(auth, tuple) else None
    response = httpx.request(method, server.url + path, auth=basic, headers=headers)
    assert_host_error(response, 401, rest)


def test_revoked_key_is_401(account: VonageSimAccount, client: httpx.Client) -> None:
    assert client.get(BALANCE).status_code == 200
    account.revoke_key()
    assert client.get(BALANCE).status_code == 401
    assert client.get(SECRETS).status_code == 401


def test_query_credentials_are_recorded_and_not_accepted(
    account: VonageSimAccount, server: VonageSimServer, client: httpx.Client
) -> None:
    client.get(BALANCE)
    assert account.query_credentials == []
    response = httpx.get(server.url + BALANCE, params={"api_key": KEY, "api_secret": SECRET})
    assert response.status_code == 401
    (seen,) = account.query_credentials
    assert seen.query["api_secret"] == SECRET and seen.path == BALANCE


# --- routing and recording ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "rest"),
    [
        ("GET", "/account/nope", 404, True),
        ("GET", "/nope", 404, False),
        ("POST", BALANCE, 405, True),
        ("GET", TOPUP, 405, True),
        ("DELETE", SECRETS, 405, False),
        ("PUT", AUDIT, 405, False),
    ],
)
def test_unknown_paths_and_methods(
    client: httpx.Client, method: str, path: str, status: int, rest: bool
) -> None:
    assert_host_error(call(client, method, path), status, rest)


def test_requests_are_recorded(account: VonageSimAccount, client: httpx.Client) -> None:
    client.post(TOPUP, data={"trx": "abc"}, params={"x": "1"})
    (request,) = account.requests
    assert (request.method, request.path, request.query) == ("POST", TOPUP, {"x": "1"})
    assert request.text == "trx=abc" and request.form() == [("trx", "abc")]
    assert request.received_at == T0 and request.headers["accept"] == "application/json"
    assert SECRET not in repr(request) and account.request_count(TOPUP) == 1


def test_secret_problems_are_problem_json(client: httpx.Client) -> None:
    response = call(client, "DELETE", SECRETS)
    assert response.headers["content-type"] == "application/problem+json"


# --- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "rest"), ROUTES)
@pytest.mark.parametrize("status", [429, 500, 503])
def test_status_faults_use_the_host_shape(
    account: VonageSimAccount, client: httpx.Client, method: str, path: str, rest: bool, status: int
) -> None:
    account.inject_fault(path, Fault.status(status))
    response = call(client, method, path)
    assert_host_error(response, status, rest)
    assert ("retry-after" in response.headers) == (status == 429)
    assert call(client, method, path).status_code != status  # used up


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        ("seconds", "7"),
        ("epoch_s", str(int(T0.timestamp()) + 7)),
        ("epoch_ms", str(int(T0.timestamp()) * 1000 + 7000)),
    ],
)
def test_429_reset_forms(
    account: VonageSimAccount, client: httpx.Client, reset: Any, expected: str
) -> None:
    account.inject_fault(BALANCE, Fault.status(429, reset=reset, after_s=7))
    response = client.get(BALANCE)
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-reset"] == expected
    assert response.headers["x-ratelimit-remaining"] == "0"


def test_status_fault_with_own_body_and_headers(
    account: VonageSimAccount, client: httpx.Client
) -> None:
    body = {"error-code": "999", "error-code-label": "odd"}
    account.inject_fault(TOPUP, Fault.status(200, body=body, headers={"X-Odd": "1"}))
    response = client.post(TOPUP, data={"trx": TRX})
    assert (response.status_code, response.json()) == (200, body)
    assert response.headers["x-odd"] == "1" and account.topups == []


def test_fault_times_and_until_cleared(account: VonageSimAccount, client: httpx.Client) -> None:
    account.inject_fault(BALANCE, Fault.status(503), times=2)
    assert [client.get(BALANCE).status_code for _ in range(3)] == [503, 503, 200]
    account.inject_fault(BALANCE, Fault.status(500), times=-1)
    assert [client.get(BALANCE).status_code for _ in range(3)] == [500] * 3
    account.clear_faults()
    assert client.get(BALANCE).status_code == 200
    with pytest.raises(ValueError):
        account.inject_fault(BALANCE, Fault.status(500), times=0)


def test_malformed_fault(account: VonageSimAccount, client: httpx.Client) -> None:
    account.inject_fault(BALANCE, Fault.malformed())
    response = client.get(BALANCE)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_disconnect_fault(account: VonageSimAccount, client: httpx.Client) -> None:
    account.inject_fault(AUDIT, Fault.disconnect())
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(AUDIT)
    assert account.request_count(AUDIT) == 1
    assert client.get(AUDIT).status_code == 200


def test_delay_fault_times_out_a_client(account: VonageSimAccount, client: httpx.Client) -> None:
    account.inject_fault(BALANCE, Fault.delay(2))
    with pytest.raises(httpx.ReadTimeout):
        client.get(BALANCE, timeout=0.2)


def test_hold_fault_answers_normally_once_released(
    account: VonageSimAccount, client: httpx.Client
) -> None:
    account.set_auto_reload(True)
    release = threading.Event()
    account.inject_fault(TOPUP, Fault.hold(release))
    answers: list[int] = []
    worker = threading.Thread(
        target=lambda: answers.append(client.post(TOPUP, data={"trx": TRX}).status_code)
    )
    worker.start()
    deadline = time.monotonic() + 5
    while account.request_count(TOPUP) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert account.request_count(TOPUP) == 1 and answers == [] and account.topups == []
    release.set()
    worker.join(timeout=5)
    assert answers == [200] and account.topups == [Decimal("50.00")]


# --- the kit's pieces ---------------------------------------------------------------------


def test_json_bytes_writes_decimals_exactly() -> None:
    payload = {"a": [Decimal("1E+2"), Decimal("0.10")], "b": None, "c": "x"}
    assert json_bytes(payload) == b'{"a": [100, 0.10], "b": null, "c": "x"}'
    with pytest.raises(ValueError):
        json_bytes(Decimal("NaN"))


def test_rate_limit_reset_value() -> None:
    assert RateLimit(after_s=3, reset="epoch_s").reset_value(T0) == str(int(T0.timestamp()) + 3)


def test_clock_is_settable(account: VonageSimAccount) -> None:
    account.set_now(datetime(2027, 1, 1))
    account.advance(timedelta(hours=1))
    assert account.now() == datetime(2027, 1, 1, 1, tzinfo=UTC)
    assert account.add_secret().created_at == account.now()
    assert account.add_audit_event()["created_at"] == "2027-01-01T01:00:00"


def test_server_lifecycle(account: VonageSimAccount) -> None:
    sim = VonageSimServer(account)
    with pytest.raises(RuntimeError):
        sim.url  # noqa: B018
    with sim:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.url)
        with pytest.raises(RuntimeError):
            sim.start()
    sim.stop()  # a no-op when stopped


def test_the_simulator_loads_only_the_standard_library_and_simkit() -> None:
    code = (
        "import sys, watcher.providers.vonage.sim\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('watcher'))))\n"
        "print(' '.join(m for m in ('httpx', 'yaml', 'pydantic') if m in sys.modules))\n"
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    ours, third_party = result.stdout.split("\n")[:2]
    allowed = ("watcher.providers.simkit", "watcher.providers.vonage")
    assert all(m in ("watcher", "watcher.providers") or m.startswith(allowed) for m in ours.split())
    assert third_party == ""
