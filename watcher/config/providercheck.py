"""Rules against the providers of their accounts (DESIGN section 4): a kind, an audit
`match` / `ignore` field, a balance `field` or a drift `expect` field that no provider of
the rule's accounts offers is an error at its key, `path:line:col: rules[i].key: message`,
and so is an expected value of the wrong type for its field (bool, money, int, str).

The providers' offers come in as a parameter (`watcher.providers.registry.capabilities()`
at the callers): the config layer does not import providers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from watcher.config.accounts import AccountConfig, discovering
from watcher.core.accountmatch import may_select_children, selects
from watcher.core.capabilities import Capabilities
from watcher.core.drift import as_expected
from watcher.core.rules import AuditRule, BalanceRule, DriftRule, ForecastRule, Rule, SpendRule
from watcher.core.spend import SAMPLE_BASELINE_DAYS

Key = str | tuple[int | str, ...]  # dotted (`match.user_id`), or a tuple when a key holds dots
At = Callable[[str, Key], str]  # (rule name, key) -> "path:line:col: loc: "
Offers = Mapping[str, tuple[Capabilities, list[str]]]  # provider -> (offer, account names)


def provider_errors(
    rules: Sequence[Rule],
    accounts: Sequence[AccountConfig],
    capabilities: Mapping[str, Capabilities],
    at: At,
) -> list[str]:
    """Errors for rules that none of their accounts' providers can judge.

    In: the loaded rules, the configured accounts, each provider's `Capabilities` and
    `at` (the place of a rule's key, e.g. `rulecheck.RulePlaces(found).at`). A rule
    whose accounts are unknown (reported elsewhere) or whose providers have no known
    capabilities is not judged here. Out: error lines in rule order.
    """
    errors: list[str] = []
    for rule in rules:
        offers = _offers(rule, accounts, capabilities)
        if offers:
            errors += [at(rule.name, key) + message for key, message in _problems(rule, offers)]
    return errors


def _offers(
    rule: Rule, accounts: Sequence[AccountConfig], capabilities: Mapping[str, Capabilities]
) -> dict[str, tuple[Capabilities, list[str]]]:
    offers: dict[str, tuple[Capabilities, list[str]]] = {}
    for account in accounts:
        offer = capabilities.get(account.provider)
        if offer is None or not _takes(rule, account):
            continue
        offers.setdefault(account.provider, (offer, []))[1].append(account.name)
    return offers


def _takes(rule: Rule, account: AccountConfig) -> bool:
    """The rule applies to the account, or may to its discovered children."""
    if selects(rule.accounts, account.name):
        return True
    children = account.name in discovering([account])
    return children and any(may_select_children(p, account.name) for p in rule.accounts or [])


def _problems(rule: Rule, offers: Offers) -> Iterator[tuple[Key, str]]:
    if not any(offer.offers(rule.kind) for offer, _ in offers.values()):
        yield (
            "kind",
            f"{rule.kind} rules do not apply to {_who(offers)}: no provider of the rule's "
            "accounts offers them",
        )
        return
    if isinstance(rule, AuditRule):
        yield from _audit_problems(rule, offers)
    if isinstance(rule, BalanceRule | ForecastRule):
        known = _union(offer.balance_fields for offer, _ in offers.values())
        if rule.field not in known:
            yield "field", _missing("balance field", rule.field, offers, known)
    if isinstance(rule, DriftRule):
        yield from _drift_problems(rule, offers)
    if isinstance(rule, SpendRule):
        yield from _spend_problems(rule, offers)


def _spend_problems(rule: SpendRule, offers: Offers) -> Iterator[tuple[Key, str]]:
    """A calendar period no provider of the rule's accounts offers; `numbers` where none
    has charges; a day spike whose baseline reaches past the balance samples kept, on a
    provider without charges."""
    if rule.period is None:
        return
    periods = _union(offer.spend_periods for offer, _ in offers.values())
    if rule.period not in periods:
        shown = ", ".join(sorted(periods)) or "none"
        yield (
            "period",
            f"period {rule.period} is not offered by {_who(offers)} (they have: {shown})",
        )
    if rule.numbers and not any(offer.charges for offer, _ in offers.values()):
        yield "numbers", f"numbers come from Telnyx charges: {_who(offers)} have none"
    days = rule.spike.baseline.days if rule.spike else 0
    samples = {p: o for p, o in offers.items() if not o[0].charges}
    if days > SAMPLE_BASELINE_DAYS and samples:
        yield (
            "spike.baseline",
            f"{_who(samples)} count spend from balance samples, kept 8 days: a day "
            f"spike's baseline may be at most {SAMPLE_BASELINE_DAYS}d there",
        )


def _drift_problems(rule: DriftRule, offers: Offers) -> Iterator[tuple[Key, str]]:
    types = {n: t for offer, _ in offers.values() for n, t in offer.drift_fields.items()}
    for name, value in rule.expect.items():
        if name not in types:
            yield ("expect", name), _missing("drift field", name, offers, frozenset(types))
            continue
        try:
            as_expected(value, types[name])
        except ValueError as exc:
            yield ("expect", name), str(exc)


def _audit_problems(rule: AuditRule, offers: Offers) -> Iterator[tuple[str, str]]:
    known = _union(offer.audit_fields for offer, _ in offers.values())
    entries = [("match", rule.match)] + [(f"ignore.{i}", e) for i, e in enumerate(rule.ignore)]
    for where, criteria in entries:
        for key in criteria:
            if key not in known:
                yield f"{where}.{key}", _missing("audit field", key, offers, known)


def _missing(what: str, name: str, offers: Offers, known: frozenset[str]) -> str:
    article = "an" if what[0] in "aeiou" else "a"
    shown = ", ".join(sorted(known))
    return f"{name} is not {article} {what} of {_who(offers)} (they have: {shown})"


def _who(offers: Offers) -> str:
    """`vonage accounts (eu)` or `telnyx accounts (main) and vonage accounts (eu, fr)`."""
    return " and ".join(
        f"{provider} accounts ({', '.join(names)})"
        for provider, (_, names) in sorted(offers.items())
    )


def _union(sets: Iterator[frozenset[str]] | list[frozenset[str]]) -> frozenset[str]:
    out: frozenset[str] = frozenset()
    for item in sets:
        out |= item
    return out
