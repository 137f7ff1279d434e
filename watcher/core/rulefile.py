"""`Rule`, the union of every rule kind (keyed on `kind`), and `RuleFile`, a rule file.

Re-exported by `watcher.core.rules`. The kinds are in `watcher.core.rulekinds`, or in
their own module beside their evaluation (`watcher.core.drift`, `watcher.core.spend`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from watcher.core.drift import DriftRule
from watcher.core.rulekinds import (
    AuditRule,
    BalanceRule,
    CredentialsRule,
    ForecastRule,
    InvoiceRule,
    WebhookFailuresRule,
    _doc,
)
from watcher.core.spend import SpendRule

Rule = Annotated[
    BalanceRule
    | ForecastRule
    | AuditRule
    | WebhookFailuresRule
    | CredentialsRule
    | InvoiceRule
    | DriftRule
    | SpendRule,
    Field(discriminator="kind"),
]


class RuleFile(BaseModel):
    """A rule file of account-watcher: a list of rules under `rules:`."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="account-watcher rule file")

    rules: list[Rule] = _doc(
        "the rules of this file; names must be unique across all files",
        [{"name": "low-credit", "kind": "balance", "below": {"warning": 100, "critical": 50}}],
        default_factory=list,
    )
