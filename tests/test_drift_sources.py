"""The settings slow sources on a real store against the simulators: read when due, the
last read kept (typed) and given to drift on the cycles in between, also after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from conftest import API_KEY
from pydantic import SecretStr
from vonage_support import KEY, SECRET, SETTINGS, requests
from vonage_support import vonage_fixture as vonage_fixture  # the fixture `vonage`

from watcher.config.resolve import ResolvedSecrets
from watcher.config.settings import TelnyxAccountConfig, VonageAccountConfig
from watcher.core.model import SourceName
from watcher.providers import registry
from watcher.providers.base import ClientOptions, Collected, Needs, Provider
from watcher.providers.telnyx.sim import SimServer
from watcher.providers.vonage.sim import VonageSimServer
from watcher.state.store import Store

PREFS = "/payment/auto_recharge_prefs"
OPTIONS = ClientOptions(timeout=3.0, interval=timedelta(seconds=10))
T0 = datetime.now(UTC)
NEEDS = Needs(frozenset({SourceName.SETTINGS, SourceName.BALANCE}))


def _commit(store: Store, account: str, got: Collected) -> None:
    with store.transaction():
        for source, cursor in got.cursors.items():
            store.set_cursor(account, str(source), cursor)
        for source, resume in got.resumes.items():
            store.set_resume(account, str(source), resume)


async def _cycle(provider: Provider, db: Path, at: datetime) -> Collected:
    with Store.open(db) as store:  # a new open each cycle: as after a restart
        got = await provider.collect(NEEDS, store, at, first_start=T0, deadline=None)
        assert got.failures == {}
        _commit(store, provider.account, got)
    return got


def _telnyx(sim: SimServer) -> Provider:
    account = TelnyxAccountConfig.model_validate(
        {"name": "main", "api_key": "env:TELNYX_API_KEY", "base_url": sim.url}
    )
    secrets = ResolvedSecrets(api_keys={"main": SecretStr(API_KEY)})
    return registry.build(account, secrets, OPTIONS)


def _vonage(server: VonageSimServer) -> Provider:
    account = VonageAccountConfig.model_validate(
        {
            "name": "eu",
            "provider": "vonage",
            "api_key": KEY,
            "api_secret": "env:VONAGE_API_SECRET",
            "rest_url": server.url,
            "api_url": server.url,
        }
    )
    secrets = ResolvedSecrets(
        api_keys={"eu": SecretStr(KEY)}, api_secrets={"eu": SecretStr(SECRET)}
    )
    return registry.build(account, secrets, OPTIONS)


async def test_telnyx_prefs_are_read_when_due_and_kept_in_between(
    tmp_path: Path, sim: SimServer
) -> None:
    sim.account.set_auto_recharge(enabled=True, threshold_amount="20.00")
    provider = _telnyx(sim)
    db = tmp_path / "state.db"
    first = await _cycle(provider, db, T0)
    read = {
        "auto_recharge.enabled": True,
        "auto_recharge.threshold_amount": Decimal("20.00"),
        "auto_recharge.recharge_amount": Decimal("100.00"),
        "auto_recharge.preference": "credit_paypal",
    }
    assert first.snapshot.settings == read and SourceName.SETTINGS in first.succeeded
    sim.account.set_auto_recharge(enabled=False)
    kept = await _cycle(provider, db, T0 + timedelta(minutes=9))
    assert kept.snapshot.settings == read  # not due: the last read, typed as read
    assert sim.account.request_count(PREFS) == 1
    again = await _cycle(provider, db, T0 + timedelta(minutes=10))
    assert again.snapshot.settings is not None
    assert again.snapshot.settings["auto_recharge.enabled"] is False
    assert sim.account.request_count(PREFS) == 2
    await provider.aclose()


async def test_a_lost_or_unreadable_kept_read_is_read_again_at_once(
    tmp_path: Path, sim: SimServer
) -> None:
    provider = _telnyx(sim)
    db = tmp_path / "state.db"
    await _cycle(provider, db, T0)
    with Store.open(db) as store, store.transaction():
        store.set_resume("main", str(SourceName.SETTINGS), None)
    got = await _cycle(provider, db, T0 + timedelta(minutes=1))
    assert got.snapshot.settings is not None and sim.account.request_count(PREFS) == 2
    await provider.aclose()


async def test_vonage_settings_are_kept_and_auto_reload_comes_from_every_balance(
    tmp_path: Path, vonage: VonageSimServer
) -> None:
    vonage.account.set_settings(mo_callback_url="https://hooks.example.com/mo")
    provider = _vonage(vonage)
    db = tmp_path / "state.db"
    first = await _cycle(provider, db, T0)
    assert first.snapshot.settings is not None
    assert first.snapshot.settings["settings.mo_callback_url"] == "https://hooks.example.com/mo"
    assert first.snapshot.settings["auto_reload"] is True
    assert set(first.snapshot.settings) == {
        "auto_reload",
        "settings.mo_callback_url",
        "settings.dr_callback_url",
        "settings.max_outbound_request",
        "settings.max_inbound_request",
        "settings.max_calls_per_second",
    }
    vonage.account.set_settings(mo_callback_url="https://other.example.com/mo")
    vonage.account.set_auto_reload(False)
    kept = await _cycle(provider, db, T0 + timedelta(minutes=5))
    assert kept.snapshot.settings == {  # the balance is read every cycle
        **first.snapshot.settings,
        "auto_reload": False,
    }
    assert requests(vonage, SETTINGS) == 1
    sent = [r for r in vonage.account.requests if r.path == SETTINGS]
    assert [(r.method, r.body, dict(r.query)) for r in sent] == [("POST", b"", {})]
    await provider.aclose()
