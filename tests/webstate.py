"""A real state for the status page's tests: a Telnyx and a Vonage simulator, a config
with both accounts, `once` run through the real CLI a few times (one balance sample
each), a silence, a hostile audit event, and the page served from it in this process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from conftest import API_KEY, cli_env, run_cli

from watcher.providers.simkit.parts import Fault
from watcher.providers.telnyx.sim import SimAccount, SimServer
from watcher.providers.vonage.sim import VonageSimAccount, VonageSimServer
from watcher.providers.vonage.sim_routes import AUDIT_PATH
from watcher.service.metrics import Metrics, MetricsServer
from watcher.service.web import PageSource, web_server
from watcher.service.wiring import load_runtime

VONAGE_KEY = "abcd1234"
VONAGE_SECRET = "Vonage-secret-for-tests-1"
HOSTILE = '<script>alert("x")</script><img src="https://evil.example/x.png">'

RULES = """\
rules:
  - name: low-credit
    kind: balance
    below: {warning: 100, critical: 50}
  - name: config-change
    kind: audit
    accounts: [main]
    holds_topups: true
    match:
      change_made_by: [organization_member]
  - name: drained
    kind: balance
    accounts: [eu]
    field: balance
    below: 1000
    severity: info
"""


@dataclass
class PageState:
    config: Path
    state: Path
    telnyx: SimAccount
    vonage: VonageSimAccount
    env: dict[str, str]

    def once(self) -> None:
        done = run_cli("--config", str(self.config), "once", env=self.env)
        assert done.returncode == 0, done.stderr

    def cli(self, *args: str) -> str:
        done = run_cli("--config", str(self.config), *args, env=self.env)
        assert done.returncode == 0, done.stderr
        return done.stdout


def write_two_account_config(
    tmp_path: Path, telnyx_url: str, vonage_url: str, hook: str, *, web: str = ""
) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
accounts:
  - name: main
    api_key: env:TELNYX_API_KEY
    base_url: {telnyx_url}
    topup: {{enabled: false, amount: "100.00", max_per_day: "300.00", max_per_month: "900.00"}}
  - name: eu
    provider: vonage
    api_key: {VONAGE_KEY}
    api_secret: env:VONAGE_SECRET
    currency: EUR
    rest_url: {vonage_url}
    api_url: {vonage_url}
poll: {{interval: 10s, timeout: 3s}}
rules: [rules.yaml]
state: {{path: {tmp_path / "state.db"}}}
notify:
  routes:
    ops: {{urls: ["{hook}"]}}
{web}"""
    )
    return config


@contextlib.contextmanager
def page_state(tmp_path: Path, hook: str, *, samples: int = 3) -> Iterator[PageState]:
    """Two simulated accounts, `samples` cycles of `once`, a silence on `low-credit` of
    `eu`, a hostile audit event on `main` (which holds its top-ups), and a last cycle in
    which the audit log of `eu` fails."""
    telnyx = SimAccount(api_key=API_KEY, balance="80.00")
    vonage = VonageSimAccount(api_key=VONAGE_KEY, api_secret=VONAGE_SECRET, balance="40.12345678")
    with SimServer(telnyx) as t_server, VonageSimServer(vonage) as v_server:
        config = write_two_account_config(tmp_path, t_server.base_url, v_server.url, hook)
        state = PageState(
            config, tmp_path / "state.db", telnyx, vonage, cli_env(VONAGE_SECRET=VONAGE_SECRET)
        )
        for i in range(samples):
            telnyx.set_balance(Decimal("80.00") - 10 * i)
            state.once()
        state.cli("silence", "add", "low-credit", "--account", "eu", "--duration", "2h",
                  "--reason", "card <b>replaced</b>")  # fmt: skip
        telnyx.add_audit_event(
            change_made_by="organization_member",
            changes=[{"field": "webhook_url", "from": "https://a.example", "to": HOSTILE}],
        )
        vonage.inject_fault(AUDIT_PATH, Fault.malformed(), times=-1)  # a failing source
        state.once()
        yield state


@contextlib.contextmanager
def serving(state: PageState, token: str | None = None) -> Iterator[str]:
    """The page of `state` on a free loopback port; out: its base URL."""
    runtime = load_runtime(state.config, state.env)
    source = PageSource(runtime.loaded.settings, runtime.rules, state.state)
    from pydantic import SecretStr

    server: MetricsServer = web_server(
        Metrics(interval=10),
        ("127.0.0.1", 0),
        lambda: source,
        token=None if token is None else SecretStr(token),
    )
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
