"""What Vonage accounts offer to rules (data for `check`).

The balance is one `value`: both `balance` and `available_credit` (no credit limit,
nothing pending). Credential changes come from the account's API secrets.
"""

from __future__ import annotations

from watcher.core.capabilities import Capabilities
from watcher.core.rulekinds import VONAGE_AUDIT_FIELDS

CAPABILITIES = Capabilities(
    kinds=frozenset({"balance", "forecast", "audit", "credentials"}),
    audit_fields=frozenset(VONAGE_AUDIT_FIELDS),
    balance_fields=frozenset({"available_credit", "balance"}),
)
