"""The status page's cost: render time, and the daemon's CPU per cycle with and without it.

1. Render time: a state database with N accounts (2 and 20), each with a day of balance
   samples at a 60 s interval (1,440), a few top-ups, alerts and a silence, written
   through the real store. Measured, median of `--repeat`: reading the view (its own
   read-only connection), rendering the HTML (Jinja2 + chart geometry), the whole GET /
   over HTTP, and GET /api/v1/status.
2. CPU per cycle: the real `account-watcher run` against the loopback simulator, as in
   bench/cycle.py (whose measuring code this reuses): without `web.listen`, with the
   server listening but idle, and with the page fetched once per second meanwhile (all
   threads' CPU from /proc/PID/stat, the request threads included; clock-tick
   resolution, so use enough cycles), and RSS after the cycles.

    .venv/bin/python bench/web.py [--repeat 30] [--cycles 30] [--interval 1s]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cycle as cyclebench

from watcher.config.ruleload import load_rules
from watcher.config.settings import load_settings
from watcher.core.ledger_types import EntryState, NewEntry
from watcher.core.model import AlertKey, AlertState, Balance, Phase, Severity
from watcher.providers.telnyx.sim import SimServer
from watcher.service.metrics import Metrics
from watcher.service.web import PageSource, WebApp, page_template, render_page, web_server
from watcher.service.webview import read_status
from watcher.state.ledger import Ledger
from watcher.state.silences import Silences
from watcher.state.store import Store, open_readonly

NOW = datetime.now(UTC)
RULES = """\
rules:
  - {name: low-credit, kind: balance, below: {warning: 100, critical: 50}}
  - {name: runway, kind: forecast, runs_out_within: 24h}
"""


def write_state(base: Path, accounts: int) -> Path:
    """A config with `accounts` Telnyx accounts and a state holding a day of samples."""
    (base / "rules.yaml").write_text(RULES)
    names = [f"acct{i:02d}" for i in range(accounts)]
    listed = ", ".join(f"{{name: {n}, api_key: 'env:K', topup: {{enabled: true}}}}" for n in names)
    config = base / "config.yaml"
    config.write_text(
        f"accounts: [{listed}]\nrules: [rules.yaml]\nstate: {{path: {base / 'state.db'}}}\n"
        "notify: {routes: {ops: {urls: ['json://127.0.0.1:9/x']}}}\n"
    )
    with Store.open(base / "state.db") as store, store.transaction():
        for index, name in enumerate(names):
            for minute in range(1440):
                value = (Decimal(500 + index) - Decimal("0.3") * minute).quantize(Decimal("0.01"))
                at = NOW - timedelta(minutes=1440 - minute)
                store.add_balance_sample(
                    name, at, Balance(value, value, Decimal(0), Decimal(0), "USD")
                )
            key = AlertKey("low-credit", name)
            store.save_alerts(
                {key: AlertState(key, Phase.FIRING, Severity.WARNING, NOW - timedelta(hours=2))}
            )
        ledger = Ledger(store)
        for name in names[:5]:
            entry = NewEntry(name, Decimal("100.00"), "USD", "low-credit", "bench")
            ledger.add(entry, EntryState.DRY_RUN, NOW - timedelta(hours=3))
        Silences(store).add("low-credit", account=names[0], reason="bench", created_by="bench",
                            now=NOW, duration=timedelta(hours=1))  # fmt: skip
    return config


def median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def render_rows(accounts: int, repeat: int) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        config = write_state(Path(tmp), accounts)
        loaded = load_settings(config, environ={})
        rules = load_rules(loaded.settings.rules, loaded.config_dir).rules
        source = PageSource(loaded.settings, rules, Path(tmp) / "state.db")
        template = page_template()

        def read() -> object:
            store = open_readonly(source.state_path)
            try:
                return read_status(store, source.settings, rules, datetime.now(UTC), "24h")
            finally:
                store.close()

        view = read()
        app = WebApp(Metrics(interval=60), lambda: source)
        server = web_server(Metrics(interval=60), ("127.0.0.1", 0), lambda: source)
        server.start()
        try:
            url = f"http://127.0.0.1:{server.port}"
            with httpx.Client() as client:
                page = median_ms(lambda: client.get(url + "/").raise_for_status(), repeat)
                api = median_ms(
                    lambda: client.get(url + "/api/v1/status").raise_for_status(), repeat
                )
                size = len(client.get(url + "/").content)
        finally:
            server.stop()
        assert app.read("24h").accounts
        return [
            (f"{accounts} accounts: read the view", f"{median_ms(read, repeat):.1f} ms"),
            (
                f"{accounts} accounts: render the HTML",
                f"{median_ms(lambda: render_page(template, view, None), repeat):.1f} ms",  # type: ignore[arg-type]
            ),
            (f"{accounts} accounts: GET / (HTTP)", f"{page:.1f} ms ({size / 1024:.0f} KiB)"),
            (f"{accounts} accounts: GET /api/v1/status", f"{api:.1f} ms"),
        ]


def cycle_config(base: Path, api_url: str, hook_port: int, interval: str, listen: bool) -> Path:
    config = cyclebench.write_config(base, api_url, hook_port, interval, f"c{int(listen)}.yaml")
    text = config.read_text()
    if not listen:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("metrics:"))
    config.write_text(text + "\n")
    return config


FETCHED: list[int] = []


@contextlib.contextmanager
def fetching(config: Path) -> Iterator[None]:
    """GET / once per second while the block runs (the page left open in a browser)."""
    port = next(
        line.split("'")[1].rsplit(":", 1)[1]
        for line in config.read_text().splitlines()
        if line.startswith("metrics:")
    )
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(1.0):
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                FETCHED.append(response.status_code)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=6)


def cycle_rows(cycles: int, interval: str) -> list[tuple[str, str]]:
    interval_s = cyclebench.parse_seconds(interval)
    cyclebench.compile_bytecode()
    rows = []
    with (
        SimServer(cyclebench.seeded_account()) as server,
        cyclebench.json_receiver() as hook_port,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for label, listen, fetch in (
            ("without web.listen", False, False),
            ("with the web server, idle", True, False),
            ("with the page fetched every 1 s", True, True),
        ):
            config = cycle_config(Path(tmp), server.base_url, hook_port, interval, listen)
            with fetching(config) if fetch else contextlib.nullcontext():
                run = cyclebench.start_and_measure(
                    config, cycles=cycles, warmup=3, interval_s=interval_s
                )
            # /proc/PID/stat, not schedstat: the server's request threads are gone by the
            # time schedstat is summed over /proc/PID/task, their CPU with them.
            rows.append(
                (f"CPU per cycle, {label}", f"{run.cpu_ms:.2f} ms (RSS {run.rss_mib:.1f} MiB)")
            )
    rows.append(("pages fetched meanwhile (status 200)", f"{FETCHED.count(200)} of {len(FETCHED)}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="renders timed per size")
    parser.add_argument("--cycles", type=int, default=30, help="cycles measured per run")
    parser.add_argument("--interval", default="1s", help="poll.interval of the runs")
    args = parser.parse_args()
    rows = render_rows(2, args.repeat) + render_rows(20, args.repeat)
    rows += cycle_rows(args.cycles, args.interval)
    width = max(len(name) for name, _ in rows)
    print(f"status page: median of {args.repeat} renders; {args.cycles} cycles per run")
    print(f"{'measure':{width}}  value")
    for name, value in rows:
        print(f"{name:{width}}  {value}")


if __name__ == "__main__":
    main()
