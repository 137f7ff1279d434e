"""The status page over plain HTTP (DESIGN §11): the CSP header on every response,
nothing external, escaping of attacker-controlled text, the token (bearer or ?token=),
the JSON API against its schema, /healthz and /metrics; and `run` serving it off
loopback behind a token, stopping cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import jsonschema
import pytest
from conftest import REPO, run_cli, wait_for
from prism_support import free_port
from webstate import HOSTILE, PageState, page_state, serving

from watcher.service.webmodel import status_schema, status_schema_text

TOKEN = "t0ken-for-the-page-tests"
PATHS = ["/", "/?span=7d", "/api/v1/status", "/api/v1/schema", "/static/page.css", "/metrics"]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageState]:
    with page_state(tmp_path_factory.mktemp("web"), "json://127.0.0.1:9/unreachable") as s:
        yield s


@pytest.fixture(scope="module")
def base(state: PageState) -> Iterator[str]:
    with serving(state) as url:
        yield url


class Links(HTMLParser):
    """Every src/href attribute and every tag of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in {"src", "href", "action"}]


def links(html: str) -> Links:
    parser = Links()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("path", [*PATHS, "/healthz", "/nothing"])
def test_every_response_carries_the_csp_header(base: str, path: str) -> None:
    response = httpx.get(base + path)
    assert response.status_code in {200, 404, 503}
    assert response.headers["content-security-policy"] == "default-src 'self'"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_the_page_links_nothing_external_and_has_no_script(base: str) -> None:
    for path in ["/", "/?span=30d"]:
        response = httpx.get(base + path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        parsed = links(response.text)
        assert parsed.urls, "the page has links (span switch, stylesheet)"
        for url in parsed.urls:
            assert url.startswith("/") and not url.startswith("//"), url
        assert "script" not in parsed.tags and "img" not in parsed.tags
        assert "style=" not in response.text  # inline styles would break the CSP
        assert '<link rel="stylesheet" href="/static/page.css">' in response.text


def test_a_hostile_audit_event_shows_as_text(base: str) -> None:
    html = httpx.get(base + "/").text
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html  # the hold's cause
    assert "evil.example" in html and 'src="https://evil' not in html
    assert "card &lt;b&gt;replaced&lt;/b&gt;" in html  # a silence's reason, too
    assert "<b>" not in html


def test_the_json_matches_its_schema_and_the_committed_copy(base: str) -> None:
    served = httpx.get(base + "/api/v1/schema")
    assert served.status_code == 200
    assert served.json() == status_schema()
    committed = (REPO / "docs" / "status.schema.json").read_text()
    assert committed == status_schema_text(), (
        "docs/status.schema.json is stale: run `account-watcher schema --status > "
        "docs/status.schema.json`"
    )
    for span in ["24h", "7d", "30d"]:
        status = httpx.get(f"{base}/api/v1/status?span={span}")
        assert status.status_code == 200 and status.headers["content-type"] == "application/json"
        jsonschema.validate(status.json(), json.loads(committed))
        assert status.json()["span"] == span


def test_the_json_holds_what_the_state_holds(base: str, state: PageState) -> None:
    view = httpx.get(base + "/api/v1/status").json()
    accounts = {a["name"]: a for a in view["accounts"]}
    assert accounts["main"]["balance"] == "60.00" and accounts["main"]["currency"] == "USD"
    assert accounts["eu"]["balance"] == "40.12345678" and accounts["eu"]["currency"] == "EUR"
    assert [p["value"] for p in accounts["main"]["chart"]["points"]] == [
        "80.00",
        "70.00",
        "60.00",
        "60.00",
    ]
    assert {(t["severity"], t["value"]) for t in accounts["main"]["chart"]["thresholds"]} == {
        ("warning", "100"),
        ("critical", "50"),
    }
    assert accounts["main"]["topups"]["day_cap"] == "300.00"
    assert accounts["main"]["topups"]["month_cap"] == "900.00"
    assert accounts["main"]["topups"]["mode"] == "not paying: on hold"
    assert [h["rule"] for h in accounts["main"]["holds"]] == ["config-change"]
    alerts = {(a["rule"], a["account"]): a for a in view["alerts"]}
    assert alerts[("low-credit", "eu")]["status"] == "silenced"
    assert alerts[("low-credit", "main")]["status"] == "firing"
    assert view["silences"][0]["rule_glob"] == "low-credit"
    (route,) = view["routes"]
    assert route["name"] == "ops" and route["pending"] > 0 and route["last_failure"]
    sources = {s["source"]: s for s in accounts["eu"]["sources"]}
    assert sources["balance"]["failing_since"] is None and sources["balance"]["error"] is None
    assert sources["audit"]["failing_since"] is not None and sources["audit"]["error"]
    page = httpx.get(base + "/").text
    assert 'data-source="audit"><td>audit</td>' in page and "failing since" in page


def test_span_must_be_known_and_requests_are_read_only(base: str) -> None:
    assert httpx.get(base + "/?span=1y").status_code == 400
    assert httpx.post(base + "/", content=b"x").status_code == 405
    page = httpx.get(base + "/?span=7d").text
    assert '<a href="/?span=7d" class="current" aria-current="page">7d</a>' in page


def test_healthz_and_metrics(base: str) -> None:
    health = httpx.get(base + "/healthz")
    assert health.status_code == 200 and health.text.startswith("starting")
    metrics = httpx.get(base + "/metrics")
    assert metrics.status_code == 200 and "account_watcher_cycles_total" in metrics.text


def test_a_configured_token_is_required_on_loopback_too(state: PageState) -> None:
    with serving(state, token=TOKEN) as url:
        for path in [*PATHS[:4], "/metrics"]:
            assert httpx.get(url + path).status_code == 401, path
            assert httpx.get(url + path, params={"token": "wrong"}).status_code == 401
            bad = {"Authorization": "Bearer wrong"}
            assert httpx.get(url + path, headers=bad).status_code == 401
            good = {"Authorization": f"Bearer {TOKEN}"}
            assert httpx.get(url + path, headers=good).status_code == 200, path
        denied = httpx.get(url + "/")
        assert denied.headers["www-authenticate"].startswith("Bearer")
        assert denied.headers["content-security-policy"] == "default-src 'self'"
        # a browser carries ?token=, and the page's links keep it
        page = httpx.get(url + "/", params={"token": TOKEN})
        assert page.status_code == 200
        assert f'href="/?span=7d&amp;token={TOKEN}"' in page.text
        assert httpx.get(url + "/healthz").status_code == 200  # probes need no token
        assert httpx.get(url + "/static/page.css").status_code == 200


def test_run_serves_off_loopback_only_with_the_token_and_stops_on_sigterm(
    tmp_path: Path, state: PageState
) -> None:
    config = tmp_path / "config.yaml"
    text = state.config.read_text().replace(str(state.state), str(tmp_path / "state.db"))
    config.write_text(text + f"web:\n  listen: 0.0.0.0:{free_port()}\n")
    refused = run_cli("--config", str(config), "check", env=state.env)
    assert refused.returncode == 1 and "set web.token" in refused.stderr
    (tmp_path / "rules.yaml").write_text((state.config.parent / "rules.yaml").read_text())
    env = {**state.env, "WEB_TOKEN": TOKEN}
    process, url = _run_on_a_free_port(config, text, env)
    try:
        wait_for(lambda: "main" in httpx.get(url + "/api/v1/status", params={"token": TOKEN}).text)
        assert httpx.get(url + "/").status_code == 401
        assert httpx.get(url + "/", params={"token": TOKEN + "x"}).status_code == 401
        page = httpx.get(url + "/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 200 and 'data-account="eu"' in page.text
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert TOKEN not in err


def _run_on_a_free_port(
    config: Path, text: str, env: dict[str, str]
) -> tuple[subprocess.Popen[str], str]:
    """`run` serving on 0.0.0.0 at a free port, once `/healthz` answers 200: out the
    process and its loopback URL. A port taken between `free_port` and the daemon's bind
    (another test's connection, under xdist) is a harness race, so it tries another; any
    other early exit fails with the daemon's stderr."""
    for _ in range(3):
        port = free_port()
        config.write_text(text + f"web:\n  listen: 0.0.0.0:{port}\n  token: env:WEB_TOKEN\n")
        process = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(config), "run"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        if _healthy_or_exited(process, url + "/healthz"):
            return process, url
        _, err = process.communicate(timeout=15)
        assert "cannot serve metrics" in err and process.returncode == 3, err
    raise AssertionError("no free port in three tries")


def _healthy_or_exited(process: subprocess.Popen[str], healthz: str) -> bool:
    """Wait until `healthz` answers 200 (out True) or `process` exits (out False); fail
    with its stderr when neither happens in time."""
    try:
        wait_for(lambda: process.poll() is not None or _status(healthz) == 200)
    except AssertionError:
        process.kill()
        _, err = process.communicate(timeout=15)
        raise AssertionError(f"{healthz} not 200 in time; stderr:\n{err}") from None
    return process.poll() is None


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.TransportError:
        return 0


LAZY_JINJA = """
import sys
from pathlib import Path
from wsgiref.util import setup_testing_defaults

from watcher.service.metrics import Metrics
from watcher.service.web import PageSource, WebApp
from watcher.service.wiring import load_runtime

config, state = Path(sys.argv[1]), Path(sys.argv[2])
import os
runtime = load_runtime(config, os.environ)
source = PageSource(runtime.loaded.settings, runtime.rules, state)
app = WebApp(Metrics(interval=10), lambda: source)

def get(path):
    environ = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    seen = []
    body = b"".join(app(environ, lambda status, headers, *exc: seen.append(status)))
    return seen[0], body

print(get("/metrics")[0], "jinja2" in sys.modules)
print(get("/")[0], "jinja2" in sys.modules)
"""


def test_jinja2_is_loaded_at_the_first_page_request_not_for_metrics(state: PageState) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LAZY_JINJA, str(state.config), str(state.state)],
        env=state.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["200 OK False", "200 OK True"]
