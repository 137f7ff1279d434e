"""The status page (DESIGN §11) on `web.listen`: one WSGI application behind the
metrics server's wsgiref thread (watcher/service/metrics.py).

Routes: `/` (HTML and SVG, Jinja2 with autoescape, no script), `/api/v1/status` (the
same view as JSON), `/api/v1/schema` (its JSON Schema), `/static/` (the stylesheet
and the icon), `/metrics`
(prometheus_client's WSGI app) and `/healthz`. Read-only: anything but GET/HEAD is 405.

Every response carries `Content-Security-Policy: default-src 'self'`. With `web.token`
configured, every route but `/healthz` and `/static/` needs it, on every address:
`Authorization: Bearer T` or `?token=T` (compared with `hmac.compare_digest`), else
401. Each request reads the state through its own read-only SQLite connection
(watcher/service/webview.py), never the daemon's.

The daemon imports this module only when `web.listen` is set; the page's modules
(webmodel, webview, webchart: ~2 MiB and ~50 ms) at the first request that needs them,
and Jinja2 only at the first page request (`page_template`): a `/metrics`-only listener
never loads them, and READY=1 never waits for them.
"""

from __future__ import annotations

import functools
import hmac
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import structlog
from pydantic import SecretStr

from watcher.config.settings import Settings
from watcher.core.rulefile import Rule
from watcher.core.rules import money
from watcher.service.metrics import Metrics, MetricsServer, WsgiApp, healthz, metrics_app, plain
from watcher.state.store import StateTarget, StoreError, describe_target, open_readonly

if TYPE_CHECKING:
    import jinja2

    from watcher.service.webmodel import StatusView

log = structlog.get_logger(__name__)

CSP = "default-src 'self'"
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),  # a ?token= must not leak in a Referer
    ("Cache-Control", "no-store"),
)
REFRESH_S = 30
OPEN_PATHS = ("/healthz", "/static/")
STATIC = {
    "/static/page.css": ("page.css", "text/css; charset=utf-8"),
    "/static/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
StartResponse = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class PageSource:
    """What the page reads on each request: the running settings and rules (a reload
    swaps them) and the state database's path."""

    settings: Settings
    rules: Sequence[Rule]
    state_path: StateTarget  # the SQLite file or the PostgreSQL URL (a secret)


def utcnow() -> datetime:
    return datetime.now(UTC)


class WebApp:
    """The WSGI application. In: the daemon's metrics, a callable giving the current
    `PageSource`, the resolved token (None: no token required) and a clock."""

    def __init__(
        self,
        metrics: Metrics,
        source: Callable[[], PageSource],
        *,
        token: SecretStr | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.source = source
        self.token = token
        self.clock = clock
        self.metrics = metrics
        self._metrics_app = metrics_app(metrics)
        folder = resources.files("watcher.service").joinpath("static")
        self._static = {
            path: (folder.joinpath(name).read_bytes(), kind)
            for path, (name, kind) in STATIC.items()
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def secured(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            return start_response(status, [*headers, *SECURITY_HEADERS], *exc)

        path = environ.get("PATH_INFO", "") or "/"
        if environ.get("REQUEST_METHOD", "GET") not in {"GET", "HEAD"}:
            return plain(secured, "405 Method Not Allowed", "read-only\n", [("Allow", "GET")])
        if not path.startswith(OPEN_PATHS) and not self._authorized(environ):
            return plain(
                secured,
                "401 Unauthorized",
                "a token is required: Authorization: Bearer TOKEN or ?token=TOKEN\n",
                [("WWW-Authenticate", 'Bearer realm="account-watcher"')],
            )
        try:
            return self._route(path, environ, secured)
        except Exception as exc:  # a bug must not end the thread with a bare traceback
            log.error("web.request_failed", path=path, error=f"{type(exc).__name__}: {exc}")
            return plain(secured, "500 Internal Server Error", "internal error (see the log)\n")

    def _route(self, path: str, environ: dict[str, Any], respond: StartResponse) -> list[bytes]:
        if path == "/healthz":
            return healthz(self.metrics, respond)
        if path == "/metrics":
            return list(self._metrics_app(environ, respond))
        if path in self._static:
            return _answer(respond, "200 OK", *self._static[path])
        if path == "/api/v1/schema":
            from watcher.service.webmodel import status_schema_text

            body = status_schema_text().encode()
            return _answer(respond, "200 OK", body, "application/schema+json")
        if path in {"/", "/api/v1/status"}:
            return self._status(path, environ, respond)
        return plain(respond, "404 Not Found", "not found: try /, /api/v1/status or /metrics\n")

    def _status(self, path: str, environ: dict[str, Any], respond: StartResponse) -> list[bytes]:
        from watcher.service.webmodel import DEFAULT_SPAN, SPANS, to_json

        query = parse_qs(environ.get("QUERY_STRING", ""))
        span = query.get("span", [DEFAULT_SPAN])[0]
        if span not in SPANS:
            return plain(respond, "400 Bad Request", f"span must be one of {', '.join(SPANS)}\n")
        try:
            view = self.read(span)
        except (sqlite3.Error, StoreError) as exc:
            log.warning("web.state_unreadable", error=str(exc))
            where = describe_target(self.source().state_path)
            return plain(respond, "503 Service Unavailable", f"cannot read the state {where}\n")
        if path == "/api/v1/status":
            return _answer(respond, "200 OK", to_json(view), "application/json")
        token = query.get("token", [None])[0]
        html = render_page(page_template(), view, token)
        return _answer(respond, "200 OK", html.encode(), "text/html; charset=utf-8")

    def read(self, span: str) -> StatusView:
        """The view now, over `span`, through a read-only connection of its own."""
        from watcher.service.webview import read_status

        source = self.source()
        store = open_readonly(source.state_path)
        try:
            return read_status(store, source.settings, source.rules, self.clock(), span)
        finally:
            store.close()

    def _authorized(self, environ: dict[str, Any]) -> bool:
        if self.token is None:
            return True
        expected = self.token.get_secret_value().encode()
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return True
        for value in parse_qs(environ.get("QUERY_STRING", "")).get("token", []):
            if hmac.compare_digest(value.encode(), expected):
                return True
        return False


def render_page(template: jinja2.Template, view: StatusView, token: str | None) -> str:
    """The HTML page of `view`; links keep `?token=` when the request came with one."""
    from watcher.service.webchart import geometry
    from watcher.service.webmodel import SPANS

    def link(path: str, **params: str) -> str:
        if token is not None:
            params["token"] = token
        return f"{path}?{urlencode(params)}" if params else path

    charts = {
        a.name: geometry(a.chart, a.runway, a.balance if a.balance_at else None)
        for a in view.accounts
    }
    return template.render(
        view=view, charts=charts, spans=list(SPANS), link=link, refresh=REFRESH_S
    )


@functools.cache
def page_template() -> jinja2.Template:
    """The page's template, built at the first page request: Jinja2 (about 2 MiB and
    40 ms of start-up) is imported only when someone looks at the page, not for a
    `/metrics`-only listener."""
    return _environment().get_template("page.html")


def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("watcher.service", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["money"] = _money
    return env


def _when(at: datetime | None) -> str:
    return "" if at is None else f"{at:%Y-%m-%d %H:%M:%S} UTC"


def _money(value: Decimal, currency: str = "") -> str:
    return money(value, currency)


def _answer(respond: StartResponse, status: str, body: bytes, content_type: str) -> list[bytes]:
    respond(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def web_server(
    metrics: Metrics,
    address: tuple[str, int],
    source: Callable[[], PageSource],
    *,
    token: SecretStr | None = None,
) -> MetricsServer:
    """The server of the whole web surface (not started yet: call `start()`)."""
    app: WsgiApp = WebApp(metrics, source, token=token)
    return MetricsServer(metrics, address, app)
