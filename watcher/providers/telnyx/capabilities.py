"""What Telnyx accounts offer to rules (data for `check`)."""

from __future__ import annotations

from watcher.core.capabilities import Capabilities
from watcher.core.rulekinds import TELNYX_AUDIT_FIELDS

CAPABILITIES = Capabilities(
    kinds=frozenset({"balance", "forecast", "audit", "webhook_failures", "invoice"}),
    audit_fields=frozenset(TELNYX_AUDIT_FIELDS),
    balance_fields=frozenset({"available_credit", "balance", "credit_limit", "pending"}),
)
