"""Discovery of Vonage subaccounts against the simulator (DESIGN §2.2, §10), through the
real CLI: a low subaccount fires, a shared one (`balance: null`) has no balance of its
own, the listing is read once per run (no request per subaccount), and a subaccount that
goes away is reported once."""

from __future__ import annotations

from pathlib import Path

from conftest import Receiver, run_cli, wait_for
from discovery_support import ALICE, reseller
from vonage_support import (
    SUBS,
    env,
    vonage_account,
    vonage_fixture,
    write_vonage_config,
)

from watcher.providers.vonage.sim import VonageSimServer

vonage = vonage_fixture
LOW = "eu/low00001"
SHARED = "eu/shared01"
SLEEPY = "eu/sleepy01"
RULES = """\
rules:
  - name: sub-low
    kind: balance
    accounts: ["eu/*"]
    below: {warning: 20}
"""


def _config(tmp_path: Path, server: VonageSimServer, receiver: Receiver) -> Path:
    account = server.account
    account.add_subaccount(
        name="low", api_key="low00001", use_primary_account_balance=False, balance="3.5"
    )
    account.add_subaccount(name="shared", api_key="shared01")  # balance: null
    account.add_subaccount(
        name="sleepy",
        api_key="sleepy01",
        use_primary_account_balance=False,
        balance="75.25",
        suspended=True,
    )
    entry = vonage_account(server, extra="    subaccounts: true\n")
    return write_vonage_config(tmp_path, entry, [receiver.url], RULES)


def test_once_fires_for_the_low_subaccount_only(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    path = _config(tmp_path, vonage, receiver)
    assert run_cli("--config", str(path), "check", env=env()).returncode == 0
    done = run_cli("--config", str(path), "once", env=env())
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(receiver.messages) >= 1)
    assert [t for t in receiver.titles if "firing" in t] == [f"[WARNING] sub-low firing — {LOW}"]
    assert f"account {SHARED}: nothing polled" in done.stdout
    assert f"account {SLEEPY}: balance: ok" in done.stdout
    assert vonage.account.request_count(SUBS) == 1  # discovery's; the collect does not re-read
    listed = run_cli("--config", str(path), "accounts", env=env()).stdout
    assert f"{LOW} (vonage, discovered by eu): 3.5 GBP available" in listed
    assert f"{SHARED} (vonage, discovered by eu, shares its balance): no balance yet" in listed
    assert f"{SLEEPY} (vonage, discovered by eu, suspended): 75.25 GBP" in listed


def test_a_subaccount_that_goes_away_is_reported_once(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    path = _config(tmp_path, vonage, receiver)
    assert run_cli("--config", str(path), "once", env=env()).returncode == 0
    vonage.account.remove_subaccount("sleepy01")
    for _ in range(2):  # the second run is a restart: not reported again
        assert run_cli("--config", str(path), "once", env=env()).returncode == 0
    title = f"{SLEEPY}: account no longer listed by eu"
    wait_for(lambda: title in receiver.titles)
    assert receiver.titles.count(title) == 1
    assert vonage.account.request_count(SUBS) == 3
    listed = run_cli("--config", str(path), "accounts", env=env()).stdout
    assert f"{SLEEPY} (vonage, discovered by eu, suspended, gone since " in listed


def test_subaccounts_not_provisioned_is_one_warning_not_an_outage(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    path = _config(tmp_path, vonage, receiver)
    vonage.account.disable_subaccounts()  # 403: the feature is not provisioned
    done = run_cli("--config", str(path), "once", env=env())
    assert done.returncode == 0, done.stderr
    assert "watcher-source-down" not in done.stdout
    assert done.stderr.count('"discovery.unavailable"') == 1
    assert vonage.account.request_count(SUBS) == 1  # not asked again by the collect
    assert "eu/" not in done.stdout


def test_a_telnyx_manager_and_a_vonage_primary_in_one_config(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    telnyx, found = reseller()
    with telnyx:
        path = _config(tmp_path, vonage, receiver)
        text = path.read_text().replace(
            "accounts:\n",
            "accounts:\n"
            f"  - {{name: main, api_key: 'env:TELNYX_API_KEY', base_url: '{telnyx.base_url}',"
            " managed_accounts: true}\n",
            1,
        )
        path.write_text(text)
        rules = tmp_path / "rules" / "rules.yaml"
        rules.write_text(RULES.replace('["eu/*"]', '["eu/*", "main/*"]'))
        done = run_cli("--config", str(path), "once", env=env())
    assert done.returncode == 0, done.stderr
    wait_for(lambda: len(receiver.messages) >= 2)
    assert sorted(t for t in receiver.titles if "firing" in t) == [
        f"[WARNING] sub-low firing — {LOW}",
        f"[WARNING] sub-low firing — {ALICE}",
    ]
    assert (
        found.manager.request_count("/managed_accounts"),
        vonage.account.request_count(SUBS),
    ) == (1, 1)
