"""`account-watcher demo`: the real daemon against two simulated accounts, in under a minute.

A story plays on the loopback simulators, one Telnyx account (`demo`) and one Vonage
account (`eu`). Telnyx: credit drains (warning, then critical: a top-up under the caps
pays 100.00 and resolves it), a burst of webhook failures comes and goes, then an
unexpected configuration change lands in the audit log (and an expected one that the
rule ignores) and holds the account's top-ups (fraud hold): when the credit runs low
again, the top-up that would have been paid is refused as held, until a person pays by
hand. Vonage: someone turns
auto-reload off, a new API secret appears, and the balance (8 decimals, in EUR) dips
below the warning level until it is topped up by hand. Alerts print to the terminal as
they fire, through a custom apprise scheme.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from apprise.decorators import notify as apprise_notify

from watcher.cli import demoweb
from watcher.core.render import Message
from watcher.notify.digest import build as build_digest
from watcher.notify.digest import kinds_of
from watcher.providers.telnyx.sim import SimAccount, SimServer
from watcher.providers.vonage.sim import VonageSimAccount, VonageSimServer
from watcher.service import logs
from watcher.service.cycle import Daemon
from watcher.service.supervisor import Supervisor
from watcher.service.wiring import build_wiring, load_runtime
from watcher.state.store import Store

DEMO_KEY_ENV = "ACCOUNT_WATCHER_DEMO_KEY"
DEMO_KEY = "demo-key-not-a-secret"
DEMO_VONAGE_KEY = "demo1234"
DEMO_VONAGE_SECRET_ENV = "ACCOUNT_WATCHER_DEMO_VONAGE_SECRET"  # noqa: S105 (a variable name)
DEMO_VONAGE_SECRET = "demo-Vonage-secret-not-a-secret"  # noqa: S105 (the simulator's fake)
DEMO_VONAGE_TRX_ENV, DEMO_VONAGE_TRX = "ACCOUNT_WATCHER_DEMO_VONAGE_TRX", "demo-trx"

CONFIG = """\
accounts:
  - name: demo
    api_key: env:{key_env}
    base_url: {base_url}
    topup:
      enabled: true                # the simulator's card: money moves only there
      amount: "100.00"
      max_per_day: "300.00"
      min_interval: {min_interval}s
      hold_after: 1h
  - name: eu
    provider: vonage
    api_key: {vonage_key}
    api_secret: env:{vonage_secret_env}
    currency: EUR
    rest_url: {vonage_url}
    api_url: {vonage_url}
    topup:
      enabled: true
      trx: env:{vonage_trx_env}
      amount: "50.00"
      max_per_day: "150.00"
poll:
  interval: {interval}s
  timeout: {timeout}s
  slow_interval: {interval}s
rules: [rules.yaml]
state:
  path: {state}
notify:
  repeat_interval: 1h
  routes:
    terminal:
      urls: ["awdemo://terminal"]
log:
  level: warning
  format: console
"""

RULES = """\
rules:
  - name: low-credit
    kind: balance
    field: available_credit
    below: {warning: 100, critical: 50}
    clear_above: 120
    topup: true
    description: Add credit in the provider's portal before calls and messages start failing.
  - name: unexpected-config-change
    kind: audit
    accounts: [demo]
    severity: critical
    holds_topups: true
    match:
      change_made_by: [account_owner, organization_member, account_manager]
    ignore:
      - field: tags
    description: Someone changed the account outside the change process. Check it was intended.
  - name: auto-reload-switched-off
    kind: audit
    accounts: [eu]
    severity: critical
    match:
      event_type: AUTORELOAD_DISABLE
    description: Auto-reload was switched off; the account will not refill itself.
  - name: api-secret-change
    kind: credentials
    accounts: [eu]
    description: An API secret was created or revoked. Check that it was you.
  - name: webhook-failure-spike
    kind: webhook_failures
    accounts: [demo]
    window: {window}s
    at_least: 10
    group_by: url
    severity: critical
    description: Your webhook endpoint is failing; messages and call events are not reaching you.
"""

_COLOURS = {"failure": "\033[31m", "warning": "\033[33m", "success": "\033[32m", "info": "\033[36m"}
_printed: list[str] = []


@apprise_notify(on="awdemo", name="account-watcher demo terminal")  # type: ignore[untyped-decorator,no-untyped-call]
def _print_alert(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    colour = _COLOURS.get(str(notify_type), "") if sys.stdout.isatty() else ""
    reset = "\033[0m" if colour else ""
    print(f"\n{colour}{title}{reset}\n{textwrap.indent(body, '    ')}", flush=True)
    _printed.append(title)
    return True


@dataclass(frozen=True, slots=True)
class Story:
    """The demo's timeline in seconds from the start (scaled by `speed`)."""

    speed: float = 1.0
    interval: float = 2.0
    drain_per_s: Decimal = Decimal("8")
    start_balance: Decimal = Decimal("180")
    paid_at: float = 34.0
    paid_balance: Decimal = Decimal("288.00")
    change_at: float = 20.0
    min_interval: float = 5.0
    burst_at: float = 12.0
    window: float = 20.0
    ends_at: float = 40.0
    eu_balance: Decimal = Decimal("140.12345678")
    eu_auto_reload_off_at: float = 8.0
    eu_low_at: float = 10.0
    eu_low_balance: Decimal = Decimal("86.40123456")
    eu_secret_at: float = 16.0
    eu_paid_at: float = 30.0
    eu_paid_balance: Decimal = Decimal("150.00000000")

    def at(self, seconds: float) -> float:
        return seconds / self.speed

    def balance(self, elapsed: float) -> Decimal:
        t = Decimal(str(round(elapsed * self.speed, 2)))
        if t >= Decimal(str(self.paid_at)):
            return self.paid_balance
        return (self.start_balance - self.drain_per_s * t).quantize(Decimal("0.01"))


def _script(
    account: SimAccount, story: Story, started: float
) -> list[tuple[float, Callable[[], Any]]]:
    def change() -> None:
        account.add_audit_event(
            change_type="update",
            change_made_by="organization_member",
            user_id="0c3b9e6e-4a8b-4f0e-9d2a-5c8f1e7d3a21",
            resource_id="40017a1c-d4b1-4e6d-9c2f-6ab3b7e0e4d1",
            changes=[
                {
                    "field": "webhook_url",
                    "from": "https://hooks.example.com/telnyx",
                    "to": "https://hooks.example.net/new",
                }
            ],
        )
        account.add_audit_event(
            change_type="update",
            change_made_by="account_owner",
            alternate_resource_id="+14155550100",
            changes=[{"field": "tags", "from": [], "to": ["support"]}],
        )

    def burst() -> None:
        for i in range(12):
            account.add_webhook_delivery(
                url="https://hooks.example.com/telnyx/messages",
                http_status=503 if i % 4 else 500,
                event_type="message.finalized",
                error_detail="Service Unavailable",
            )
        for _ in range(2):
            account.add_webhook_delivery(url="https://old.example.com/hook", http_status=404)

    return [
        (started + story.at(story.change_at), change),
        (started + story.at(story.burst_at), burst),
    ]


def _vonage_script(
    account: VonageSimAccount, story: Story, started: float
) -> list[tuple[float, Callable[[], Any]]]:
    def auto_reload_off() -> None:
        account.set_auto_reload(False)
        account.add_audit_event(
            event_type="AUTORELOAD_DISABLE",
            user_email="mallory@example.com",
            source="CD",
            source_ip="203.0.113.7",
            source_country="NL",
        )

    def new_secret() -> None:
        account.add_secret(value="Another-secret-9")

    return [
        (started + story.at(story.eu_auto_reload_off_at), auto_reload_off),
        (started + story.at(story.eu_low_at), lambda: account.set_balance(story.eu_low_balance)),
        (started + story.at(story.eu_secret_at), new_secret),
        (started + story.at(story.eu_paid_at), lambda: account.set_balance(story.eu_paid_balance)),
    ]


def run_demo(*, speed: float = 1.0, web: bool = False) -> int:
    """Play the story; return the exit code (0). With `web`, also serve the status page
    on 127.0.0.1 (its URL printed) and keep the daemon running until Ctrl-C."""
    story = Story(speed=speed)
    return asyncio.run(_run(story, web=web))


async def _run(story: Story, *, web: bool = False) -> int:
    account = SimAccount(api_key=DEMO_KEY)
    eu = VonageSimAccount(
        api_key=DEMO_VONAGE_KEY, api_secret=DEMO_VONAGE_SECRET, balance=story.eu_balance
    )
    eu.set_auto_reload(True, trx=DEMO_VONAGE_TRX, amount="50.00")
    started = time.monotonic()
    account.set_balance_script(lambda _now: story.balance(time.monotonic() - started))
    with (
        SimServer(account) as server,
        VonageSimServer(eu) as eu_server,
        tempfile.TemporaryDirectory(prefix="aw-demo-") as tmp,
    ):
        config = _write_config(Path(tmp), server.base_url, eu_server.url, story)
        environ = {
            **os.environ,
            DEMO_KEY_ENV: DEMO_KEY,
            DEMO_VONAGE_SECRET_ENV: DEMO_VONAGE_SECRET,
            DEMO_VONAGE_TRX_ENV: DEMO_VONAGE_TRX,
        }
        runtime = load_runtime(config, environ, allow_fast_poll=True)
        logs.configure_logging(level="warning", fmt="console")
        print(_intro(story), flush=True)
        where = runtime.loaded.settings.state.resolve_state_path(environ)
        with Store.open(where) as store, contextlib.ExitStack() as stack:
            metrics = demoweb.serve(runtime, where, stack) if web else None
            daemon = Daemon(build_wiring(runtime), store, metrics=metrics)
            stop = asyncio.Event()
            if web:
                demoweb.stop_on_signals(stop)
            events = _script(account, story, started) + _vonage_script(eu, story, started)
            try:
                await asyncio.gather(
                    Supervisor(daemon, stop).run(),
                    _drive(events, story, started, None if web else stop),
                )
            finally:
                await daemon.aclose()
            digest = build_digest(
                store, runtime.loaded.settings, kinds_of(runtime.rules), datetime.now(UTC)
            )
        requests = account.request_count() + eu.request_count()
        paid = len(account.topups) + len(eu.topups)
    print(_summary(requests, paid, time.monotonic() - started), flush=True)
    print(_digest_preview(digest), flush=True)
    return 0


async def _drive(
    events: list[tuple[float, Callable[[], Any]]],
    story: Story,
    started: float,
    stop: asyncio.Event | None,
) -> None:
    """Play the events; then end the demo (`stop` None: the daemon keeps running)."""
    for at, action in sorted(events, key=lambda e: e[0]):
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        action()
    await asyncio.sleep(max(0.0, started + story.at(story.ends_at) - time.monotonic()))
    if stop is None:
        print("\nthe story is over; the page keeps updating. Ctrl-C ends the demo.", flush=True)
    else:
        stop.set()


def _write_config(tmp: Path, base_url: str, vonage_url: str, story: Story) -> Path:
    interval = max(0.2, story.at(story.interval))
    (tmp / "rules.yaml").write_text(RULES.replace("{window}", f"{story.at(story.window):g}"))
    path = tmp / "config.yaml"
    path.write_text(
        CONFIG.format(
            key_env=DEMO_KEY_ENV,
            base_url=base_url,
            vonage_key=DEMO_VONAGE_KEY,
            vonage_secret_env=DEMO_VONAGE_SECRET_ENV,
            vonage_trx_env=DEMO_VONAGE_TRX_ENV,
            vonage_url=vonage_url,
            interval=f"{interval:g}",
            timeout=f"{interval:g}",
            min_interval=f"{story.at(story.min_interval):g}",
            state=tmp / "state.db",
        )
    )
    return path


def _intro(story: Story) -> str:
    return (
        "account-watcher demo: the real daemon against a simulated Telnyx account (demo) "
        f"and a Vonage account (eu) on 127.0.0.1, polling every {story.at(story.interval):g}s."
        "\nWatch for: Telnyx credit draining (warning, then critical, then a top-up under the "
        "caps), a burst of webhook failures, an unexpected config change that holds the next "
        "top-up (fraud hold); Vonage auto-reload switched off, a new API secret, a low "
        "balance in EUR; then payments by hand and the failures age out (resolved).\n"
        f"The story ends by itself in about {story.at(story.ends_at):.0f}s."
    )


def _digest_preview(messages: list[Message]) -> str:
    """The daily digest as `digest --preview` would print it at the end, indented."""
    text = "\n\n".join(f"{m.title}\n{m.body}" for m in messages)
    return "\nThe daily digest now (account-watcher digest --preview):\n" + textwrap.indent(
        text, "  "
    )


def _summary(requests: int, paid: int, elapsed: float) -> str:
    kinds = Counter(title.split("]")[0].strip("[") for title in _printed)
    parts = ", ".join(f"{n} {k.lower()}" for k, n in sorted(kinds.items())) or "none"
    return (
        f"\ndemo finished in {elapsed:.0f}s: {len(_printed)} notifications ({parts}); "
        f"{requests} API requests to the simulators, {paid} of them a top-up payment.\n"
        "Next: copy config.yaml.example, write rules (see rules/), and run "
        "`account-watcher check` then `account-watcher once`."
    )
