"""Prometheus metrics and `/healthz`, served on `web.listen` from a background thread.

The daemon feeds `Metrics` once per cycle (`observe_cycle`, plain values: `CycleFacts`),
the providers' clients once per HTTP attempt (`count_request`). Everything lives in a
private registry. The process collector of prometheus_client reads `/proc/stat`, which
`ProcSubset=pid` hides, so RSS and CPU time come from `/proc/self/status` and
`getrusage` instead.

`/healthz` answers 200 while a cycle without source errors finished within the last
three poll intervals (or the daemon started less than three intervals ago), else 503.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from watcher.core.model import Balance

log = structlog.get_logger(__name__)

PREFIX = "account_watcher"
HEALTHY_INTERVALS = 3
BALANCE_FIELDS = ("balance", "available_credit", "credit_limit", "pending")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_STATUS_FILE = Path("/proc/self/status")
POLL_INTERVAL_S = 5.0  # how often the idle server thread wakes up; stop() wakes it at once


class CycleFacts(Protocol):
    """What `observe_cycle` reads of a finished cycle: plain values (the cycle's
    `CycleResult` is one).

    - `source_states`: (account, source, read) of every source polled.
    - `balances`: the balance read, per account.
    - `alert_phases`: (rule, phase) of every alert state.
    - `delivery_results`: (route, ok) of every delivery attempt.
    """

    @property
    def at(self) -> datetime: ...

    @property
    def duration_s(self) -> float: ...

    @property
    def source_states(self) -> Sequence[tuple[str, str, bool]]: ...

    @property
    def balances(self) -> Mapping[str, Balance]: ...

    @property
    def alert_phases(self) -> Sequence[tuple[str, str]]: ...

    @property
    def delivery_results(self) -> Sequence[tuple[str, bool]]: ...

    @property
    def gave_up(self) -> int: ...

    @property
    def backlog(self) -> int: ...


class Metrics:
    """All metrics of one daemon, plus the health verdict for `/healthz`.

    In: the poll interval in seconds (settable after a reload) and a monotonic clock.
    """

    def __init__(self, *, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `*_created` series
        self.registry = CollectorRegistry()
        self._started = clock()
        self.standby: str | None = None  # the standby reason (DESIGN §10); None: leading
        self._last_success: float | None = None
        self._lock = threading.Lock()
        self._alert_labels: set[tuple[str, str]] = set()
        self._balance_labels: dict[str, set[tuple[str, str, str]]] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._define(self.registry)
        self.registry.register(ProcessCollector())

    def _define(self, r: CollectorRegistry) -> None:
        self.poll_duration = Histogram(
            f"{PREFIX}_poll_duration_seconds",
            "Duration of one poll-evaluate-act cycle.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.cycles = Counter(
            f"{PREFIX}_cycles", "Cycles by result (ok, source_errors).", ["result"], registry=r
        )
        self.requests = Counter(
            f"{PREFIX}_api_requests",
            "HTTP requests to the Telnyx API by endpoint and status (error: no response).",
            ["endpoint", "status"],
            registry=r,
        )
        self.balance = Gauge(
            f"{PREFIX}_balance",
            "Last polled balance fields per account, in the account's currency.",
            ["account", "field", "currency"],
            registry=r,
        )
        self.source_up = Gauge(
            f"{PREFIX}_source_up",
            "1 when the source was read in the last cycle, 0 when it failed.",
            ["account", "source"],
            registry=r,
        )
        self.alerts = Gauge(
            f"{PREFIX}_alerts",
            "Alerts by rule and state (pending, firing).",
            ["rule", "state"],
            registry=r,
        )
        self.notifications = Counter(
            f"{PREFIX}_notifications",
            "Notification deliveries by route and result (ok, failed).",
            ["route", "result"],
            registry=r,
        )
        self.given_up = Counter(
            f"{PREFIX}_notifications_given_up",
            "Notification targets dropped from the outbox after notify.give_up_after.",
            registry=r,
        )
        self.topups = Counter(
            f"{PREFIX}_topups",
            "Top-up attempts by account and result.",
            ["account", "result"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            f"{PREFIX}_outbox_pending", "Notifications waiting in the outbox.", registry=r
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_success_timestamp_seconds",
            "Unix time of the last cycle without source errors.",
            registry=r,
        )

    # ------------------------------------------------------------------ feeding

    def count_request(self, endpoint: str, status: int | None) -> None:
        """One HTTP attempt (the clients' `on_request` hook); None = transport error."""
        self._child(self.requests, endpoint, "error" if status is None else str(status)).inc()

    def count_topup(self, account: str, result: str) -> None:
        """One top-up attempt and its result (e.g. paid, failed, skipped)."""
        self.topups.labels(account, result).inc()

    def set_outbox_pending(self, count: int) -> None:
        """The outbox backlog after a flush."""
        self.outbox_pending.set(count)

    def observe_cycle(self, cycle: CycleFacts) -> None:
        """Record one finished cycle: duration, balances, sources, alerts, deliveries,
        notifications given up."""
        self.poll_duration.observe(cycle.duration_s)
        ok = all(up for _, _, up in cycle.source_states)
        self.cycles.labels("ok" if ok else "source_errors").inc()
        for account, source, up in cycle.source_states:
            self._child(self.source_up, account, source).set(1 if up else 0)
        for account, balance in cycle.balances.items():
            self._set_balance(account, balance)
        self._set_alerts(cycle.alert_phases)
        for route, delivered in cycle.delivery_results:
            self.notifications.labels(route, "ok" if delivered else "failed").inc()
        self.given_up.inc(cycle.gave_up)
        self.outbox_pending.set(cycle.backlog)
        if ok:
            with self._lock:
                self._last_success = self.clock()
            self.last_success.set(cycle.at.timestamp())

    def _set_balance(self, account: str, balance: Balance) -> None:
        labels = {(account, name, balance.currency) for name in BALANCE_FIELDS}
        for stale in self._balance_labels.get(account, set()) - labels:
            self.balance.remove(*stale)
            del self._children[id(self.balance), stale]
        for name in BALANCE_FIELDS:
            child = self._child(self.balance, account, name, balance.currency)
            child.set(float(balance.field(name)))
        self._balance_labels[account] = labels

    def _child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """`metric.labels(*values)`, kept: prometheus_client checks the values and takes
        a lock on every call, ~5 µs, eleven times per account and cycle."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def _set_alerts(self, pairs: Iterable[tuple[str, str]]) -> None:
        counts: dict[tuple[str, str], int] = {}
        for pair in pairs:
            counts[pair] = counts.get(pair, 0) + 1
        for stale in self._alert_labels - counts.keys():
            self.alerts.remove(*stale)
        for (rule, state), count in counts.items():
            self.alerts.labels(rule, state).set(count)
        self._alert_labels = set(counts)

    # ------------------------------------------------------------------ health

    def health(self) -> tuple[bool, str]:
        """(healthy, one-line reason) for `/healthz`; a standby is healthy and says so."""
        if self.standby is not None:
            return True, self.standby
        limit = HEALTHY_INTERVALS * self.interval
        now = self.clock()
        with self._lock:
            last = self._last_success
        if last is None:
            age = now - self._started
            if age <= limit:
                return True, f"starting: no cycle finished yet ({age:.1f}s since start)"
            return False, f"no successful cycle in {age:.1f}s since start (limit {limit:.1f}s)"
        age = now - last
        if age <= limit:
            return True, f"ok: last successful cycle {age:.1f}s ago"
        return False, f"last successful cycle {age:.1f}s ago (limit {limit:.1f}s)"

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)


class ProcessCollector(Collector):
    """RSS and CPU time of this process without `/proc/stat` (hidden by ProcSubset=pid)."""

    def collect(self) -> Iterator[Metric]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        rss = resident_bytes()
        yield GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory size in bytes.", value=rss
        )
        yield GaugeMetricFamily(
            "process_max_resident_memory_bytes",
            "Peak resident memory size in bytes.",
            value=usage.ru_maxrss * 1024,
        )
        yield CounterMetricFamily(
            "process_cpu_seconds",
            "User and system CPU time in seconds.",
            value=usage.ru_utime + usage.ru_stime,
        )


def resident_bytes() -> int:
    """Current RSS from `/proc/self/status` (VmRSS), else the peak from getrusage."""
    try:
        for line in _STATUS_FILE.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------------------- HTTP


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
"""A WSGI application (PEP 3333)."""


class MetricsServer:
    """A WSGI application over HTTP from a daemon thread (wsgiref, one thread per
    request). By default `metrics_app`: `/metrics` and `/healthz`; the status page
    (watcher/service/web.py) passes its own `app`, which serves those too.

    In: the metrics, `(host, port)` (port 0 picks a free one, see `port`), the app.
    Raises OSError from `start()` when the address cannot be bound.
    """

    def __init__(
        self, metrics: Metrics, address: tuple[str, int], app: WsgiApp | None = None
    ) -> None:
        self.metrics = metrics
        self.address = address
        self.app = app if app is not None else metrics_app(metrics)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the metrics server is not running")
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        httpd = make_server(
            self.address[0],
            self.address[1],
            self.app,
            server_class=_server_class(self.address[0]),
            handler_class=_QuietHandler,
        )
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_S},
            name="metrics",
            daemon=True,
        )
        self._thread.start()
        log.info("metrics.listening", host=self.address[0], port=self.port)

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        # shutdown() waits until serve_forever sees its flag, which it does when select()
        # returns: a connection of our own makes that happen now, not at the next poll.
        stopper = threading.Thread(target=httpd.shutdown, name="metrics-stop", daemon=True)
        stopper.start()
        while stopper.is_alive():
            _wake(httpd.server_address[:2])
            stopper.join(0.05)
        httpd.server_close()
        thread.join(timeout=5)
        self._httpd = self._thread = None


def metrics_app(metrics: Metrics) -> WsgiApp:
    """`/metrics` (prometheus_client's WSGI app) and `/healthz`; 404 for anything else."""
    exposition = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return cast("Iterable[bytes]", exposition(environ, start_response))
        if path == "/healthz":
            return healthz(metrics, start_response)
        return plain(start_response, "404 Not Found", "not found: try /metrics or /healthz\n")

    return app


def healthz(metrics: Metrics, start_response: Callable[..., Any]) -> list[bytes]:
    """`/healthz`: 200 with the reason while healthy, else 503."""
    healthy, reason = metrics.health()
    status = "200 OK" if healthy else "503 Service Unavailable"
    return plain(start_response, status, f"{reason}\n")


def plain(
    start_response: Callable[..., Any],
    status: str,
    text: str,
    headers: Sequence[tuple[str, str]] = (),
) -> list[bytes]:
    """A text/plain answer."""
    body = text.encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]


def _wake(address: tuple[Any, ...]) -> None:
    """Connect to our own listener once (and close): its select() returns."""
    host, port = str(address[0]), int(address[1])
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        pass


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def server_bind(self) -> None:  # skip the reverse DNS lookup of HTTPServer
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()


class _Server6(_Server):
    address_family = socket.AF_INET6


def _server_class(host: str) -> type[_Server]:
    return _Server6 if ":" in host else _Server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would flood the journal
