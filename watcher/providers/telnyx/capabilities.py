"""What Telnyx accounts offer to rules (data for `check`)."""

from __future__ import annotations

from decimal import Decimal

from watcher.core.auditfields import TELNYX_AUDIT_FIELDS
from watcher.core.capabilities import Capabilities

CAPABILITIES = Capabilities(
    kinds=frozenset(
        {"balance", "forecast", "audit", "webhook_failures", "invoice", "drift", "spend"}
    ),
    audit_fields=frozenset(TELNYX_AUDIT_FIELDS),
    balance_fields=frozenset({"available_credit", "balance", "credit_limit", "pending"}),
    drift_fields={  # GET /payment/auto_recharge_prefs
        "auto_recharge.enabled": bool,
        "auto_recharge.threshold_amount": Decimal,
        "auto_recharge.recharge_amount": Decimal,
        "auto_recharge.preference": str,
    },
    spend_periods=frozenset({"day", "month"}),  # GET /charges_summary
    charges=True,
)
