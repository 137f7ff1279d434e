"""What a rule found: `Finding` (one alert key's state right now) and `RuleResult` (one
rule judged for one account). Pure data, re-exported by `watcher.core.rules`; the kinds'
evaluations (`rules`, `invoice`, `drift`) build them and the lifecycle reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import timedelta

from watcher.core.model import (
    AlertKey,
    AuditEvent,
    CredentialChange,
    Severity,
    WebhookDelivery,
)


@dataclass(frozen=True, slots=True)
class Finding:
    """The state of one alert key right now.

    - `severity`: the condition holds at this severity; None when it does not.
    - `cleared`: the condition is past its resolve threshold (hysteresis); a finding with
      `severity=None, cleared=False` keeps a firing alert firing.
    - `value` / `threshold`: rendered for messages; `facts` are template placeholders.
    - `events` / `deliveries` / `credential_changes`: the audit events, failed
      deliveries or added and removed API secrets behind it.
    """

    key: AlertKey
    severity: Severity | None
    cleared: bool = True
    value: str = ""
    threshold: str = ""
    facts: Mapping[str, str] = dc_field(default_factory=dict)
    events: tuple[AuditEvent, ...] = ()
    deliveries: tuple[WebhookDelivery, ...] = ()
    credential_changes: tuple[CredentialChange, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule judged for one account.

    `judged` is False when a source the rule needs failed this cycle: the lifecycle then
    leaves that rule's alerts exactly as they are. Keys of the rule absent from
    `findings` are treated as cleared.
    """

    rule: str
    account: str
    judged: bool
    findings: tuple[Finding, ...] = ()
    hold_for: timedelta = timedelta(0)
    one_shot: bool = False
    keep_for: timedelta = timedelta(0)
