"""The audit fields rules may `match` / `ignore` on, per provider (DESIGN section 4).

Re-exported by `watcher.core.rulekinds` and `watcher.core.rules`.
"""

from __future__ import annotations

from typing import Literal

TELNYX_AUDIT_FIELDS = (
    "change_type",
    "change_made_by",
    "resource_id",
    "alternate_resource_id",
    "user_id",
    "field",
)
VONAGE_AUDIT_FIELDS = ("event_type", "source", "source_ip", "source_country", "user_email")
AuditField = Literal[
    "change_type",
    "change_made_by",
    "resource_id",
    "alternate_resource_id",
    "user_id",
    "field",
    "event_type",
    "source",
    "source_ip",
    "source_country",
    "user_email",
]
