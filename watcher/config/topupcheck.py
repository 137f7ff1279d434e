"""`check` for top-ups: rules that can never pay, and accounts that only dry-run. Pure.

`check_rules` reports a `topup: true` rule that cannot ever be critical (no `below`, no
critical threshold, a forecast without `severity: critical`) as an error, and a top-up
rule whose account has `topup.enabled: false` or that can select discovered accounts
(never topped up, DESIGN §10) as a warning; `clarify_rule_errors` says
why `topup` is refused on any other kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from watcher.config.accounts import discovering
from watcher.config.settings import AccountConfig
from watcher.core.accountmatch import may_select_children
from watcher.core.holds import HOLD_KINDS
from watcher.core.model import Severity
from watcher.core.rules import BalanceRule, ForecastRule, Rule
from watcher.core.topup import can_top_up

_EXTRA = " Extra inputs are not permitted"
_KINDS = f"{', '.join(HOLD_KINDS[:-1])} and {HOLD_KINDS[-1]}"
_NOT_ALLOWED = {
    ".topup:" + _EXTRA: " only balance and forecast rules can top up",
    ".holds_topups:" + _EXTRA: f" only {_KINDS} rules can hold top-ups (DESIGN §6.3)",
}


def check_rules(
    rules: Iterable[Rule], locations: Mapping[str, str], accounts: Sequence[AccountConfig]
) -> tuple[list[str], list[str]]:
    """`check` for top-ups: rules that can never pay, and accounts in dry-run mode. Pure.

    In: the loaded rules, their `file:line:col` by name, the configured accounts.
    Out: (errors, warnings), each `file:line:col: message`.
    """
    errors: list[str] = []
    warnings: list[str] = []
    for rule in rules:
        if not can_top_up(rule):
            continue
        where = locations.get(rule.name, rule.name)
        if isinstance(rule, BalanceRule) and rule.below is None:
            errors.append(f"{where}: topup: needs `below` (a top-up raises the balance)")
        elif isinstance(rule, BalanceRule) and Severity.CRITICAL not in rule.levels:
            errors.append(
                f"{where}: topup: needs a critical threshold (top-ups are made while the "
                "rule is critical)"
            )
        elif isinstance(rule, ForecastRule) and rule.level is not Severity.CRITICAL:
            errors.append(
                f"{where}: topup needs severity: critical: top-ups are made while the rule "
                "is critical"
            )
        warnings += _discovered_warnings(rule, where, accounts)
        for account in accounts:
            if rule.applies_to(account.name) and not account.topup.enabled:
                warnings.append(
                    f"{where}: rule {rule.name} has topup: true but account {account.name} has "
                    "topup.enabled: false: dry runs only, nothing is paid"
                )
    return errors, warnings


def _discovered_warnings(rule: Rule, where: str, accounts: Sequence[AccountConfig]) -> list[str]:
    """A top-up rule that can select discovered accounts: those are never topped up."""
    parents = sorted(discovering(accounts))
    return [
        f"{where}: rule {rule.name} has topup: true but discovered accounts of {parent} are "
        "never topped up: the rule only alerts for them"
        for parent in parents
        if rule.accounts is None or any(may_select_children(p, parent) for p in rule.accounts)
    ]


def clarify_rule_errors(errors: Iterable[str]) -> list[str]:
    """Rule-file errors with `topup` on a kind that cannot top up, or `holds_topups` on
    one that cannot hold, explained as such."""
    return [_clarify(line) for line in errors]


def _clarify(line: str) -> str:
    for suffix, why in _NOT_ALLOWED.items():
        if line.endswith(suffix):
            return line.removesuffix(_EXTRA) + why
    return line
