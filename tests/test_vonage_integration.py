"""End to end for Vonage: the real CLI (real processes) against the Vonage simulator on
127.0.0.1, alerts through real apprise into a local HTTP receiver (`json://`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import Receiver, run_cli, write_config
from pydantic import SecretStr
from vonage_support import (
    AUDIT,
    BALANCE,
    KEY,
    LOW_CREDIT,
    SECRET,
    SECRETS,
    SETTINGS,
    SUBS,
    TOPUP_CAPS,
    TRX,
    env,
    ledger,
    low_credit_topup_rules,
    once,
    requests,
    vonage_account,
    vonage_fixture,  # noqa: F401 (the fixture `vonage`)
    write_vonage_config,
)

from watcher.config.resolve import ResolvedSecrets
from watcher.config.settings import VonageAccountConfig
from watcher.core.model import SourceName
from watcher.providers import registry
from watcher.providers.base import ClientOptions, Needs
from watcher.providers.telnyx.sim import SimServer
from watcher.providers.vonage.provider import VonageProvider
from watcher.providers.vonage.sim import VonageSimServer
from watcher.providers.vonage.sources import Resume
from watcher.state.ledger import EntryState, VerifyState
from watcher.state.store import Store

CREDENTIALS = """\
rules:
  - name: credential-change
    kind: credentials
    severity: critical
"""

CREDIT_LIMIT = """\
  - name: credit-limit-low
    kind: balance
    field: credit_limit
    below: 10
"""

AUDIT_RULES = """\
rules:
  - name: auto-reload-change
    kind: audit
    severity: critical
    match:
      event_type: ["AUTORELOAD_*"]
    ignore:
      - user_email: billing-bot@example.com
"""


def test_low_balance_fires_once_with_the_exact_value_and_currency_then_resolves(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    config = write_vonage_config(tmp_path, vonage_account(vonage), [receiver.url], LOW_CREDIT)
    assert vonage.account.balance() == Decimal("40.12345678")
    first = once(config)
    assert receiver.titles == ["[CRITICAL] low-credit firing — eu"]
    body = str(receiver.messages[0]["message"])
    assert "available_credit is 40.12345678 GBP, below 50.00 GBP." in body
    assert "eu/balance: ok" in first.stdout or "balance: ok" in first.stdout

    once(config)  # still low: no repeat
    assert len(receiver.messages) == 1

    vonage.account.set_balance("130.5")
    once(config)
    assert receiver.titles[1].startswith("[RESOLVED] low-credit — eu (fired ")
    assert "now 130.50 GBP" in str(receiver.messages[1]["message"])
    status = run_cli("--config", str(config), "status", env=env())
    assert status.returncode == 0, status.stderr
    assert "eu/balance: last ok" in status.stdout
    assert "alerts: none" in status.stdout


def test_a_new_secret_alerts_once_and_the_first_poll_only_records(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    poll = "{interval: 10s, timeout: 3s, slow_interval: 0.1s}"
    config = write_vonage_config(
        tmp_path, vonage_account(vonage), [receiver.url], CREDENTIALS, poll=poll
    )
    once(config)  # the first poll records the one secret there is
    assert receiver.messages == []
    assert requests(vonage, SECRETS) == 1

    added = vonage.account.add_secret(value="Second-Secret-77")
    once(config)
    assert receiver.titles == ["[CRITICAL] credential-change: 1 credential change — eu"]
    body = str(receiver.messages[0]["message"])
    assert added.id in body and "Second-Secret-77" not in body

    once(config)  # nothing changed since: nothing new
    assert len(receiver.messages) == 1

    vonage.account.remove_secret(added.id)
    once(config)
    assert len(receiver.messages) == 2
    assert added.id in str(receiver.messages[1]["message"])
    assert "removed" in str(receiver.messages[1]["message"])


def test_secrets_are_a_slow_source_read_only_when_due(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    config = write_vonage_config(tmp_path, vonage_account(vonage), [receiver.url], CREDENTIALS)
    once(config)
    once(config)  # slow_interval (10m by default) has not passed: not read again
    assert requests(vonage, SECRETS) == 1
    assert requests(vonage, BALANCE) == 0  # no rule needs the balance


def test_an_autoreload_disable_event_alerts_once_an_ignored_one_never(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    config = write_vonage_config(tmp_path, vonage_account(vonage), [receiver.url], AUDIT_RULES)
    before = datetime.now(UTC) - timedelta(hours=1)
    vonage.account.add_audit_event(event_type="AUTORELOAD_DISABLE", created_at=before)
    once(config)  # first start: what happened before it is never alerted
    assert receiver.messages == []

    vonage.account.add_audit_event(event_type="AUTORELOAD_DISABLE", user_email="eve@example.com")
    vonage.account.add_audit_event(
        event_type="AUTORELOAD_DISABLE", user_email="billing-bot@example.com"
    )
    vonage.account.add_audit_event(event_type="ACCOUNT_UPDATE_SETTINGS_API")  # no match
    once(config)
    assert len(receiver.messages) == 1, receiver.titles
    assert receiver.titles[0].startswith("[CRITICAL] auto-reload-change")
    body = str(receiver.messages[0]["message"])
    assert "eve@example.com AUTORELOAD_DISABLE" in body
    assert "billing-bot" not in body

    once(config)  # re-read through the overlap: deduplicated, not alerted again
    assert len(receiver.messages) == 1
    date_from = [r.query["date_from"] for r in vonage.account.requests if r.path == AUDIT]
    assert len(date_from) == 3 and "+" not in date_from[-1] and "Z" not in date_from[-1]
    assert all(r.query["size"] == "100" for r in vonage.account.requests if r.path == AUDIT)


def test_a_telnyx_and_a_vonage_account_alert_separately(
    tmp_path: Path, sim: SimServer, vonage: VonageSimServer, receiver: Receiver
) -> None:
    rules = LOW_CREDIT + CREDIT_LIMIT  # Vonage has no credit limit: judged for main only
    config = write_config(tmp_path, sim.base_url, [receiver.url], rules)
    text = config.read_text().replace("poll:", vonage_account(vonage, currency="EUR") + "poll:", 1)
    config.write_text(text)
    sim.account.set_balance("45.00")
    once(config)
    assert sorted(receiver.titles) == [
        "[CRITICAL] low-credit firing — eu",
        "[CRITICAL] low-credit firing — main",
        "[WARNING] credit-limit-low firing — main",
    ]
    bodies = {str(m["title"]): str(m["message"]) for m in receiver.messages}
    assert "40.12345678 EUR" in bodies["[CRITICAL] low-credit firing — eu"]
    assert "45.00 USD" in bodies["[CRITICAL] low-credit firing — main"]

    vonage.account.set_balance("500")  # only the Vonage account recovers
    once(config)
    assert receiver.titles[3].startswith("[RESOLVED] low-credit — eu")
    assert len(receiver.messages) == 4


# -- the provider itself, on a real store: the settings form and the subaccounts ---------


def _provider(server: VonageSimServer, **extra: object) -> VonageProvider:
    account = VonageAccountConfig.model_validate(
        {
            "name": "eu",
            "provider": "vonage",
            "api_key": KEY,
            "api_secret": "env:VONAGE_API_SECRET",
            "rest_url": server.url,
            "api_url": server.url,
            **extra,
        }
    )
    secrets = ResolvedSecrets(
        api_keys={"eu": SecretStr(KEY)}, api_secrets={"eu": SecretStr(SECRET)}
    )
    options = ClientOptions(timeout=3.0, interval=timedelta(seconds=10))
    provider = registry.build(account, secrets, options)
    assert isinstance(provider, VonageProvider)
    return provider


async def test_settings_are_read_with_the_empty_form_only(
    tmp_path: Path, vonage: VonageSimServer
) -> None:
    provider = _provider(vonage)
    needs = Needs(frozenset({SourceName.SETTINGS}))
    now = datetime.now(UTC)
    with Store.open(tmp_path / "state.db") as store:
        got = await provider.collect(needs, store, now, first_start=now, deadline=None)
        await provider.aclose()
    assert got.succeeded == {SourceName.SETTINGS}
    (sent,) = [r for r in vonage.account.requests if r.path == SETTINGS]
    assert (sent.method, sent.body, sent.query) == ("POST", b"", {})
    assert vonage.account.settings_changes == []


@pytest.mark.parametrize("provisioned", [True, False])
async def test_subaccounts_are_read_when_configured_and_a_403_disables_them(
    tmp_path: Path, vonage: VonageSimServer, provisioned: bool
) -> None:
    vonage.account.add_subaccount(name="shared")
    vonage.account.add_subaccount(name="own", use_primary_account_balance=False, balance="7.5")
    vonage.account.disable_subaccounts(not provisioned)
    provider = _provider(vonage, subaccounts=True)
    now = datetime.now(UTC)
    with Store.open(tmp_path / "state.db") as store:
        for minute in range(2):
            at = now + timedelta(minutes=11 * minute)  # past slow_interval: due again
            got = await provider.collect(
                Needs(frozenset()), store, at, first_start=now, deadline=None
            )
            assert got.failures == {}
            with store.transaction():
                for source, cursor in got.cursors.items():
                    store.set_cursor("eu", str(source), cursor)
        await provider.aclose()
    assert requests(vonage, SUBS) == (2 if provisioned else 1)  # disabled after the 403
    if provisioned:
        found = provider.subaccounts
        assert found is not None
        assert [(s.name, s.balance) for s in found.subaccounts] == [
            ("shared", None),
            ("own", Decimal("7.5")),
        ]
    else:
        assert provider.subaccounts is None


# -- top-up (DESIGN §6.4) ------------------------------------------------------------------


def _topup_config(tmp_path: Path, server: VonageSimServer, receiver: Receiver) -> Path:
    account = vonage_account(server, currency="EUR", extra=TOPUP_CAPS)
    return write_vonage_config(
        tmp_path, account, [receiver.url], low_credit_topup_rules(), established=True
    )


def test_a_top_up_is_paid_once_with_the_trx_and_recorded_at_the_configured_amount(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    config = _topup_config(tmp_path, vonage, receiver)
    once(config)
    (attempt,) = vonage.account.topup_attempts
    assert attempt.trx == TRX and attempt.succeeded
    (entry,) = ledger(tmp_path)
    assert (entry.state, entry.amount, entry.currency) == (
        EntryState.SUCCEEDED,
        Decimal("50.00"),
        "EUR",
    )
    assert entry.transaction_id is None  # Vonage gives none
    assert "[INFO] top-up paid 50.00 EUR — eu" in receiver.titles
    paid = str(
        receiver.messages[receiver.titles.index("[INFO] top-up paid 50.00 EUR — eu")]["message"]
    )
    assert "Transaction id: None" not in paid

    once(config)  # the balance rose by 50: verified, nothing more to say or pay
    assert len(vonage.account.topup_attempts) == 1
    assert ledger(tmp_path)[0].verify_state is VerifyState.OK
    assert not any("differs" in t or "not reflected" in t for t in receiver.titles)


def test_auto_reload_off_is_a_failed_top_up_and_topup_unavailable_until_fixed(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    vonage.account.set_auto_reload(False)
    config = _topup_config(tmp_path, vonage, receiver)
    once(config)
    (entry,) = ledger(tmp_path)
    assert entry.state is EntryState.FAILED
    assert "not auto-reload enabled" in (entry.error or "")
    assert "[CRITICAL] top-up failed 50.00 EUR — eu" in receiver.titles
    failed = str(
        receiver.messages[receiver.titles.index("[CRITICAL] top-up failed 50.00 EUR — eu")]
    )
    assert "the auto-reload payment in the Vonage dashboard" in failed and "Telnyx" not in failed
    assert vonage.account.balance() == Decimal("40.12345678")

    unavailable = "[CRITICAL] watcher-topup-unavailable firing — eu"
    once(config)  # fires until fixed
    assert receiver.titles.count(unavailable) == 1
    body = str(receiver.messages[receiver.titles.index(unavailable)]["message"])
    assert "auto-reload is not enabled" in body and "not auto-reload enabled" in body
    once(config)
    assert receiver.titles.count(unavailable) == 1  # no repeat within repeat_interval
    vonage.account.set_auto_reload(True)  # fixed in the dashboard
    once(config)
    resolved = [t for t in receiver.titles if t.startswith("[RESOLVED] watcher-topup-unavailable")]
    assert len(resolved) == 1, receiver.titles
    assert len(vonage.account.topup_attempts) == 1  # min_interval: not tried again yet


@pytest.mark.parametrize("added", ["100.00", "35.00"])  # more than 10 % off the 50.00
def test_a_top_up_that_adds_another_amount_than_configured_is_alerted(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver, added: str
) -> None:
    vonage.account.set_auto_reload(True, amount=added)  # config says 50.00
    config = _topup_config(tmp_path, vonage, receiver)
    once(config)
    once(config)
    differs = [t for t in receiver.titles if "top-up amount differs from configured" in t]
    assert differs == ["[WARNING] top-up amount differs from configured 50.00 EUR — eu"]
    body = str(receiver.messages[receiver.titles.index(differs[0])]["message"])
    assert f"rose by {added} EUR" in body
    assert ledger(tmp_path)[0].verify_state is VerifyState.OK  # it did show up
    once(config)  # said once
    assert sum("differs" in t for t in receiver.titles) == 1


async def test_an_unfinished_audit_read_goes_on_from_its_resume_point(
    tmp_path: Path, vonage: VonageSimServer
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    for i in range(250):  # three pages of 100
        vonage.account.add_audit_event(created_at=start + timedelta(seconds=i))
    provider = _provider(vonage)
    needs = Needs(frozenset({SourceName.AUDIT}))
    until = start + timedelta(minutes=10)
    resume = Resume(start - timedelta(minutes=10), until, 2).text()
    with Store.open(tmp_path / "state.db") as store:
        with store.transaction():
            store.set_resume("eu", "audit", resume)
        got = await provider.collect(needs, store, until, first_start=start, deadline=None)
        await provider.aclose()
    pages = [r.query["page"] for r in vonage.account.requests if r.path == AUDIT]
    assert pages == ["2", "3"]  # page 1 was read (and committed) by an earlier cycle
    assert len(got.snapshot.new_audit_events) == 150
    assert got.cursors[SourceName.AUDIT] == until and got.resumes[SourceName.AUDIT] is None
