"""The Telnyx simulator serving many accounts at one URL, and what it counts of its
clients (connections accepted, most requests in flight at once)."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import wait_for

from watcher.providers.simkit.server import added_latency
from watcher.providers.telnyx.sim import HOST, Fault, SimAccount, SimServer


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_accounts_at_one_url_answer_and_record_their_own_requests() -> None:
    first = SimAccount(api_key="key-a", balance="10.00")
    second = SimAccount(api_key="key-b", balance="20.00")
    with SimServer(first, accounts=[first, second]) as sim, httpx.Client() as http:
        balances = [
            http.get(f"{sim.base_url}/balance", headers=_auth(key)).json()["data"]["balance"]
            for key in ("key-a", "key-b", "key-b")
        ]
        unknown = http.get(f"{sim.base_url}/balance", headers=_auth("key-c"))
    assert balances == ["10.00", "20.00", "20.00"]
    assert unknown.status_code == 401
    assert (first.request_count("/balance"), second.request_count("/balance")) == (2, 2)


def test_a_fault_applies_to_the_account_whose_key_the_request_carries() -> None:
    first, second = SimAccount(api_key="key-a"), SimAccount(api_key="key-b")
    second.inject_fault("/balance", Fault.status(503))
    with SimServer(first, accounts=[first, second]) as sim, httpx.Client() as http:
        codes = [
            http.get(f"{sim.base_url}/balance", headers=_auth(key)).status_code
            for key in ("key-a", "key-b", "key-b")
        ]
    assert codes == [200, 503, 200]


def test_traffic_counts_connections_not_requests() -> None:
    account = SimAccount(api_key="key-a")
    with SimServer(account) as sim:
        with httpx.Client() as http:  # one kept-alive connection for three requests
            for _ in range(3):
                http.get(f"{sim.base_url}/balance", headers=_auth("key-a"))
        for _ in range(2):  # a connection each
            httpx.get(f"{sim.base_url}/balance", headers=_auth("key-a"))
        # a handler counts itself out after its answer is written: the client may be first
        wait_for(lambda: sim.traffic.in_flight == 0, timeout=5)
        traffic = sim.traffic
    assert (traffic.connections, traffic.in_flight, traffic.max_in_flight) == (3, 0, 1)


def test_traffic_keeps_the_most_requests_in_flight_at_once() -> None:
    account, release = SimAccount(api_key="key-a"), threading.Event()
    account.inject_fault("/balance", Fault.hold(release), times=4)

    def get(url: str) -> int:
        return httpx.get(url, headers=_auth("key-a"), timeout=30).status_code

    with SimServer(account) as sim, ThreadPoolExecutor(4) as pool:
        answers = [pool.submit(get, f"{sim.base_url}/balance") for _ in range(4)]
        while account.request_count("/balance") < 4:  # all four arrived and are held
            threading.Event().wait(0.01)
        held = sim.traffic.in_flight
        release.set()
        codes = [a.result() for a in answers]
        # a handler counts itself out after its answer is written: the client may be first
        wait_for(lambda: sim.traffic.in_flight == 0, timeout=5)
        traffic = sim.traffic
    assert (held, traffic.max_in_flight, traffic.in_flight, codes) == (4, 4, 0, [200] * 4)


def test_latency_is_a_knob_of_the_server() -> None:
    account = SimAccount(api_key="key-a")
    with SimServer(account, latency=0.001) as sim:
        status = httpx.get(f"{sim.base_url}/balance", headers=_auth("key-a")).status_code
    assert (sim.latency, status) == (0.001, 200)


@pytest.mark.parametrize(
    ("latency", "jitter", "drawn", "expected"),
    [
        (0.05, 0.0, None, 0.05),  # no jitter: the latency, nothing drawn
        (0.05, 0.02, "low", 0.03),
        (0.05, 0.02, "high", 0.07),
        (0.01, 0.05, "low", 0.0),  # never below 0
        (0.0, 0.0, None, 0.0),
    ],
)
def test_added_latency_is_the_latency_give_or_take_the_jitter(
    latency: float, jitter: float, drawn: str | None, expected: float
) -> None:
    asked: list[tuple[float, float]] = []

    def draw(low: float, high: float) -> float:
        asked.append((low, high))
        return low if drawn == "low" else high

    assert added_latency(latency, jitter, draw) == pytest.approx(expected)
    assert asked == ([] if drawn is None else [(-jitter, jitter)])


def test_jitter_spreads_the_answers_of_the_server() -> None:
    account = SimAccount(api_key="key-a")
    with pytest.raises(ValueError, match="at least 0"):
        SimServer(account, latency=0.01, jitter=-0.01)
    took = []
    with SimServer(account, latency=0.03, jitter=0.02) as sim, httpx.Client() as client:
        for _ in range(20):
            started = time.monotonic()
            assert client.get(f"{sim.base_url}/balance", headers=_auth("key-a")).status_code == 200
            took.append(time.monotonic() - started)
    assert min(took) >= 0.01  # never less than latency - jitter
    assert max(took) - min(took) >= 0.005  # fixed at 0.03 s without the jitter


def test_many_connections_opened_at_once_fit_the_listen_backlog() -> None:
    """A backlog of 5 (socketserver's default) drops the SYNs of a client opening 20
    connections at once; the kernel retries them a second later, which made a cycle of a
    pooled client one second longer each time its idle connections had expired."""
    with SimServer(SimAccount(api_key="key-a")) as sim:
        sockets = [socket.create_connection((HOST, sim.port), timeout=5) for _ in range(64)]
        backlog = sim._httpd.request_queue_size if sim._httpd is not None else 0
        for sock in sockets:
            sock.close()
    assert backlog >= 64
