"""Drift: the `drift` rule kind and its evaluation, a provider's settings against the
rule's `expect` (DESIGN section 4). Pure.

A provider fills `AccountSnapshot.settings` with its settings flattened to the field
names of its `Capabilities.drift_fields` (`auto_recharge.enabled`, `auto_reload`,
`settings.mo_callback_url`, ...). The rule fires while any expected field differs; the
message lists each one `expected → actual`; it resolves when all match. Money compares
as Decimal (`"20"` equals `20.00`); a field expected as `null` expects it unset.

Per account, only the fields its provider offers are judged (a rule of a config with
both providers may expect fields of each); a field it offers but the snapshot lacks
(its source failed or was not read yet) leaves the rule not judged this cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import ClassVar, Literal

from pydantic import StrictBool, StrictInt, StrictStr

from watcher.core.findings import Finding, RuleResult
from watcher.core.model import AccountSnapshot, AlertKey, SourceName
from watcher.core.rulekinds import COMMON_PLACEHOLDERS, _doc, _HoldsRule

DriftValue = StrictBool | StrictInt | float | StrictStr | None


class DriftRule(_HoldsRule):
    """Fires while a provider setting differs from `expect` (`watcher.core.drift`)."""

    placeholders: ClassVar[Mapping[str, str]] = {
        **COMMON_PLACEHOLDERS,
        "value": "each differing field, e.g. `auto_recharge.enabled: expected true → false`",
        "fields": "the differing fields, comma-separated",
        "count": "how many fields differ",
    }

    kind: Literal["drift"] = _doc("provider settings must stay as expected", "drift")
    expect: dict[str, DriftValue] = _doc(
        "setting → expected value: telnyx auto_recharge.enabled, .threshold_amount, "
        ".recharge_amount, .preference; vonage auto_reload, settings.mo_callback_url, "
        ".dr_callback_url, .max_outbound_request, .max_inbound_request, "
        ".max_calls_per_second (money as a quoted decimal string)",
        {"auto_recharge.enabled": True, "auto_recharge.threshold_amount": "20.00"},
        {"auto_reload": True, "settings.mo_callback_url": "https://example.com/mo"},
        min_length=1,
    )


TYPE_WORDS: Mapping[type, str] = {
    bool: "true or false",
    Decimal: 'an amount of money (e.g. "20.00")',
    int: "a whole number",
    str: "a string",
}
BALANCE_DRIFT_FIELDS = frozenset({"auto_reload"})  # vonage: the balance's `autoReload`


def drift_sources(rule: DriftRule) -> frozenset[SourceName]:
    """What a drift rule needs read: the balance for `auto_reload`, else the settings."""
    fields = set(rule.expect)
    needs = {SourceName.BALANCE} if fields & BALANCE_DRIFT_FIELDS else set()
    return frozenset(needs | ({SourceName.SETTINGS} if fields - BALANCE_DRIFT_FIELDS else set()))


def as_expected(value: object, kind: type) -> object:
    """A value from a rule file as a field of type `kind` expects it (None: unset).

    Raises: ValueError naming what the field must be (a bool is not a number, `5.5` is not
    a whole number, a number is not a string).
    """
    if value is None:
        return None
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    if kind is Decimal and isinstance(value, int | float | str) and not isinstance(value, bool):
        amount = _decimal(value)
        if amount is not None:
            return amount
    raise ValueError(f"must be {TYPE_WORDS.get(kind, kind.__name__)}, not {_typed(value)}")


def _decimal(value: int | float | str) -> Decimal | None:
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _typed(value: object) -> str:
    if isinstance(value, bool):
        return f"the boolean {shown(value)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return f"the string {value!r}" if isinstance(value, str) else type(value).__name__


def shown(value: object) -> str:
    """A setting as messages show it: `true`, `unset`, `20.00`, `https://…`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "unset" if value is None else str(value)


def differences(
    expect: Mapping[str, object], settings: Mapping[str, object], types: Mapping[str, type]
) -> list[tuple[str, object, object]]:
    """`(field, expected, actual)` for each expected field whose actual value differs, in
    the rule's order. A value that cannot be read as its type counts as differing."""
    out = []
    for name, raw in expect.items():
        actual = settings.get(name)
        try:
            expected = as_expected(raw, types.get(name, type(actual)))
        except ValueError:
            expected = raw
        if expected != actual or type(expected) is not type(actual):  # 1 == True, not here
            out.append((name, expected, actual))
    return out


def judge_drift(
    rule: DriftRule, snap: AccountSnapshot, types: Mapping[str, type] | None
) -> RuleResult:
    """The drift rule for one account. In: `types`, the provider's drift fields (None:
    every field of the rule, typed as the snapshot's values). Out: one finding, firing
    while anything differs; not judged while a needed field is missing."""
    fields = {n: v for n, v in rule.expect.items() if types is None or n in types}
    settings = snap.settings or {}
    if not fields or any(name not in settings for name in fields):
        return RuleResult(rule.name, snap.account, False, hold_for=rule.for_)
    diffs = differences(fields, settings, types or {})
    finding = Finding(
        key=AlertKey(rule.name, snap.account),
        severity=rule.level if diffs else None,
        cleared=not diffs,
        value=_value(diffs, fields, settings),
        threshold="expected " + ", ".join(f"{n} {shown(v)}" for n, v in fields.items()),
        facts={"fields": ", ".join(n for n, _, _ in diffs), "count": str(len(diffs))},
    )
    return RuleResult(rule.name, snap.account, True, (finding,), hold_for=rule.for_)


def _value(
    diffs: list[tuple[str, object, object]],
    fields: Mapping[str, object],
    settings: Mapping[str, object],
) -> str:
    if not diffs:
        return "as expected: " + ", ".join(f"{n} {shown(settings[n])}" for n in fields)
    return "; ".join(f"{n}: expected {shown(e)} → {shown(a)}" for n, e, a in diffs)
