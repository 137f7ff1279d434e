"""A Telnyx manager with managed accounts on the simulator, and a config watching them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from conftest import API_KEY

from watcher.providers.telnyx.sim import SimAccount, SimServer
from watcher.providers.telnyx.sim_managed import ManagedChild

ALICE = "main/alice_dot_smith_at_example_dot_com"  # Alice.Smith@example.com
BOB = "main/bob_at_example_dot_com"  # rollup_billing: shares main's balance
CAROL = "main/carol_at_example_dot_com"

LOW_CHILDREN = """\
rules:
  - name: child-low
    kind: balance
    accounts: ["main/*"]
    below: {warning: 20}
"""


@dataclass
class Reseller:
    """The manager (`main`) and its three managed accounts."""

    manager: SimAccount
    alice: ManagedChild[SimAccount]
    bob: ManagedChild[SimAccount]
    carol: ManagedChild[SimAccount]

    @property
    def children(self) -> list[ManagedChild[SimAccount]]:
        return [self.alice, self.bob, self.carol]

    @property
    def secrets(self) -> list[str]:
        """Every child's api_key and api_token."""
        return [s for c in self.children for s in (c.api_key, c.api_token)]


def reseller() -> tuple[SimServer, Reseller]:
    """A simulator serving the manager and its children (tenants by key): alice low
    (5.00), bob rollup (own balance low too, but it must not be read), carol plenty."""
    manager = SimAccount(api_key=API_KEY, balance="500.00")
    alice = SimAccount(api_key="KEYchild-alice-7d1f0c9e2b", balance="5.00")
    bob = SimAccount(api_key="KEYchild-bob-4a8e61f0d3", balance="1.00")
    carol = SimAccount(api_key="KEYchild-carol-9b27c4e5a1", balance="300.00")
    server = SimServer(manager, accounts=[manager, alice, bob, carol])
    found = Reseller(
        manager,
        manager.managed.add(alice, email="Alice.Smith@example.com"),
        manager.managed.add(bob, email="bob@example.com", rollup_billing=True),
        manager.managed.add(carol, email="carol@example.com"),
    )
    return server, found


def config(
    tmp_path: Path,
    base_url: str,
    urls: list[str],
    rules: str = LOW_CHILDREN,
    *,
    extra: str = "",
) -> Path:
    """`main` with `managed_accounts: true` (and `extra` keys of its flow mapping, e.g.
    `, topup: {...}`), one rule file, the state in `tmp_path`."""
    (tmp_path / "rules.yaml").write_text(rules)
    path = tmp_path / "config.yaml"
    path.write_text(
        "accounts:\n"
        f"  - {{name: main, api_key: 'env:TELNYX_API_KEY', base_url: '{base_url}',"
        f" managed_accounts: true{extra}}}\n"
        "poll: {interval: 10s, timeout: 3s}\n"
        "rules: [rules.yaml]\n"
        f"state: {{path: {tmp_path / 'state.db'}}}\n"
        f"notify: {{routes: {{ops: {{urls: {json.dumps(urls)}}}}}}}\n"
    )
    return path
