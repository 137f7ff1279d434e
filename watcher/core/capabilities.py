"""What a provider offers to rules: the rule kinds, audit fields and balance fields. Pure.

Each provider package states its own (`watcher.providers.<name>.capabilities`); `check`
and the loading of `run` / `once` reject a rule that none of its accounts' providers can
judge (`watcher.config.providercheck`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Capabilities:
    """One provider's offer.

    - `kinds`: rule kinds it can judge, e.g. `{"balance", "audit"}`.
    - `audit_fields`: keys audit rules may `match` / `ignore` on its events.
    - `balance_fields`: values `field` of balance and forecast rules may name.
    - `drift_fields`: settings a drift rule may `expect`, each with its value's type
      (`bool`, `Decimal` for money, `int` or `str`), e.g. `{"auto_reload": bool}`.
    - `spend_periods`: calendar periods (`day`, `month`) spend rules may use (rolling
      windows come from balance samples everywhere).
    - `charges`: calendar spend periods come from the provider's charges (Telnyx), not
      from balance samples.
    """

    kinds: frozenset[str]
    audit_fields: frozenset[str] = frozenset()
    balance_fields: frozenset[str] = frozenset()
    drift_fields: Mapping[str, type] = field(default_factory=dict, hash=False)
    spend_periods: frozenset[str] = frozenset()
    charges: bool = False

    def offers(self, kind: str) -> bool:
        return kind in self.kinds
