"""What Vonage accounts offer to rules (data for `check`).

The balance is one `value`: both `balance` and `available_credit` (no credit limit,
nothing pending). Credential changes come from the account's API secrets. Drift fields:
`auto_reload` (the balance's `autoReload`) and the settings (the empty-form POST).
"""

from __future__ import annotations

from watcher.core.auditfields import VONAGE_AUDIT_FIELDS
from watcher.core.capabilities import Capabilities

CAPABILITIES = Capabilities(
    kinds=frozenset({"balance", "forecast", "audit", "credentials", "drift", "spend"}),
    audit_fields=frozenset(VONAGE_AUDIT_FIELDS),
    balance_fields=frozenset({"available_credit", "balance"}),
    drift_fields={
        "auto_reload": bool,
        "settings.mo_callback_url": str,
        "settings.dr_callback_url": str,
        "settings.max_outbound_request": int,
        "settings.max_inbound_request": int,
        "settings.max_calls_per_second": int,
    },
    spend_periods=frozenset({"day"}),  # from balance samples, kept 8 days: no month
)
