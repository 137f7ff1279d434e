"""End to end: the `invoice` rule through the real CLI (`once`, real processes) against
the Telnyx simulator on 127.0.0.1, alerts through real apprise into a local receiver.

Invoices are a slow source read at most hourly: an hour passing is the invoices cursor
in the state (the time of the last read) moved back, as the daemon itself would find it.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from conftest import API_KEY, Receiver, run_cli, write_config

from watcher.core.model import SourceName
from watcher.providers.telnyx.sim import SimServer
from watcher.state.store import Store

INVOICES = "/invoices"
RULES = """\
rules:
  - name: invoice-unpaid
    kind: invoice
    unpaid_for: 7d
    severity: critical
"""


def once(config: Path) -> subprocess.CompletedProcess[str]:
    result = run_cli("--config", str(config), "once")
    assert result.returncode == 0, result.stderr
    assert API_KEY not in result.stdout + result.stderr
    return result


def config_with(tmp_path: Path, sim: SimServer, receiver: Receiver, slow: str) -> Path:
    """The test config with `poll.slow_interval: slow`."""
    config = write_config(tmp_path, sim.base_url, [receiver.url], RULES)
    text = config.read_text().replace(
        "  timeout: 3s\n", f"  timeout: 3s\n  slow_interval: {slow}\n"
    )
    config.write_text(text)
    return config


def an_hour_passes(tmp_path: Path) -> None:
    """Move the invoices' last read an hour and a minute back (the daemon's own cursor)."""
    with Store.open(tmp_path / "state.db") as store:
        last = store.get_cursor("main", str(SourceName.INVOICES))
        assert last is not None
        store.set_cursor("main", str(SourceName.INVOICES), last - timedelta(minutes=61))


def invoice(sim: SimServer, invoice_id: str, ended_days_ago: int, *, paid: bool = False) -> None:
    end = datetime.now(UTC).date() - timedelta(days=ended_days_ago)
    start = date(end.year, end.month, 1)
    sim.account.add_invoice(period_start=start, period_end=end, paid=paid, id=invoice_id)


def test_an_unpaid_invoice_alerts_once_per_invoice_and_resolves_when_paid(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    invoice(sim, "inv-oct", 10)
    invoice(sim, "inv-sep", 40)
    invoice(sim, "inv-aug", 70, paid=True)
    invoice(sim, "inv-new", 2)  # unpaid, but its period ended only 2 days ago
    config = config_with(tmp_path, sim, receiver, "0.1s")

    first = once(config)
    assert sorted(receiver.titles) == [
        "[CRITICAL] invoice-unpaid firing — main [inv-oct]",
        "[CRITICAL] invoice-unpaid firing — main [inv-sep]",
    ]
    body = {m["title"]: str(m["message"]) for m in receiver.messages}
    oct_body = body["[CRITICAL] invoice-unpaid firing — main [inv-oct]"]
    assert oct_body.startswith("Invoice inv-oct for ")
    assert "unpaid for 9d" in oct_body and "(alert after 7d unpaid)" in oct_body
    assert "invoices: ok" in first.stdout
    assert sim.account.request_count(INVOICES) == 1

    once(config)  # not due (at most hourly, whatever slow_interval says); still firing
    assert len(receiver.messages) == 2
    assert sim.account.request_count(INVOICES) == 1

    sim.account.set_invoice_paid("inv-oct")
    once(config)  # paid, but not read again within the hour: nothing changes yet
    assert len(receiver.messages) == 2

    an_hour_passes(tmp_path)
    once(config)
    assert sim.account.request_count(INVOICES) == 2
    assert len(receiver.titles) == 3
    assert receiver.titles[2].startswith("[RESOLVED] invoice-unpaid — main [inv-oct] (fired ")
    assert "now invoice inv-oct for " in str(receiver.messages[2]["message"])
    assert str(receiver.messages[2]["message"]).count(" paid.") == 1

    status = run_cli("--config", str(config), "status")
    print(receiver.messages)
    print(status.stdout)
    assert status.returncode == 0, status.stderr
    assert "invoice-unpaid/main [inv-sep]" in status.stdout
    assert "inv-oct" not in status.stdout


def test_invoices_are_read_at_most_hourly_at_the_default_cadence(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    invoice(sim, "inv-oct", 10)
    config = config_with(tmp_path, sim, receiver, "10m")
    for _ in range(3):
        once(config)
    assert sim.account.request_count(INVOICES) == 1
    assert len(receiver.messages) == 1  # judged every cycle on the kept invoices, no repeat
    an_hour_passes(tmp_path)
    once(config)
    assert sim.account.request_count(INVOICES) == 2
    assert sim.account.request_count("/balance") == 0  # no rule needs the balance


def test_an_invoice_that_is_gone_resolves(
    tmp_path: Path, sim: SimServer, receiver: Receiver
) -> None:
    invoice(sim, "inv-oct", 10)
    config = config_with(tmp_path, sim, receiver, "10m")
    once(config)
    sim.account.remove_invoice("inv-oct")
    an_hour_passes(tmp_path)
    once(config)
    assert receiver.titles[1].startswith("[RESOLVED] invoice-unpaid — main [inv-oct]")
    assert "the condition no longer holds" in str(receiver.messages[1]["message"])


def test_check_refuses_an_invoice_rule_for_a_vonage_account(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    config = tmp_path / "config.yaml"
    config.write_text(
        "accounts:\n  - name: eu\n    provider: vonage\n    api_key: abcd1234\n"
        "    api_secret: env:VONAGE_API_SECRET\nrules: [rules/*.yaml]\n"
    )
    result = run_cli("--config", str(config), "check")
    print(result.stderr)
    assert result.returncode == 1
    assert "invoice" in result.stderr
    assert "Traceback" not in result.stderr
