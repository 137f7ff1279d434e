"""The `invoice` rule kind: ageing of unpaid invoices, table-driven, time as a parameter."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from watcher.core.invoice import judge_invoices, period_ended, unpaid_for
from watcher.core.lifecycle import Reason, step
from watcher.core.model import AccountSnapshot, Invoice, Severity, SourceError, SourceName
from watcher.core.render import render
from watcher.core.rules import InvoiceRule, RuleFile, evaluate, sources_needed
from watcher.providers.telnyx.capabilities import CAPABILITIES as TELNYX
from watcher.providers.vonage.capabilities import CAPABILITIES as VONAGE

OCTOBER = Invoice("inv-oct", date(2026, 10, 1), date(2026, 10, 31), paid=False)
ENDED = datetime(2026, 11, 1, tzinfo=UTC)  # October's period ends at midnight after the 31st
SECOND = timedelta(seconds=1)


def rule(**extra: object) -> InvoiceRule:
    data = {"name": "invoice-unpaid", "kind": "invoice", "unpaid_for": "7d", **extra}
    parsed = RuleFile.model_validate({"rules": [data]}).rules[0]
    assert isinstance(parsed, InvoiceRule)
    return parsed


def snapshot(*invoices: Invoice) -> AccountSnapshot:
    return AccountSnapshot("main", invoices=invoices, provider="telnyx")


def firing(invoices: tuple[Invoice, ...], now: datetime, **extra: object) -> list[str]:
    result = judge_invoices(rule(**extra), snapshot(*invoices), now)
    assert result.judged
    return [f.key.group for f in result.findings if f.severity is not None]


@pytest.mark.parametrize(
    ("invoices", "now", "expected"),
    [
        pytest.param((OCTOBER,), ENDED + timedelta(days=7) - SECOND, [], id="just-before"),
        pytest.param((OCTOBER,), ENDED + timedelta(days=7), [], id="exactly-unpaid_for"),
        pytest.param((OCTOBER,), ENDED + timedelta(days=7) + SECOND, ["inv-oct"], id="just-after"),
        pytest.param(
            (OCTOBER,), datetime(2026, 11, 7, 23, 59, tzinfo=UTC), [], id="last-day-counts"
        ),
        pytest.param(
            (Invoice("inv-oct", date(2026, 10, 1), date(2026, 10, 31), paid=True),),
            ENDED + timedelta(days=40),
            [],
            id="paid",
        ),
        pytest.param(
            (
                OCTOBER,
                Invoice("inv-sep", date(2026, 9, 1), date(2026, 9, 30), paid=False),
                Invoice("inv-aug", date(2026, 8, 1), date(2026, 8, 31), paid=True),
                Invoice("inv-nov", date(2026, 11, 1), date(2026, 11, 30), paid=False),
            ),
            ENDED + timedelta(days=8),
            ["inv-oct", "inv-sep"],
            id="several-invoices-several-groups",
        ),
        pytest.param((), ENDED, [], id="no-invoices"),
    ],
)
def test_an_unpaid_invoice_fires_once_its_period_ended_longer_ago_than_unpaid_for(
    invoices: tuple[Invoice, ...], now: datetime, expected: list[str]
) -> None:
    assert sorted(firing(invoices, now)) == sorted(expected)


@pytest.mark.parametrize(
    ("limit", "now", "fires"),
    [
        ("0s", ENDED, False),
        ("0s", ENDED + SECOND, True),
        ("1h", ENDED + timedelta(minutes=61), True),
        ("30d", ENDED + timedelta(days=29), False),
    ],
)
def test_unpaid_for_is_measured_from_the_end_of_the_last_day(
    limit: str, now: datetime, fires: bool
) -> None:
    assert firing((OCTOBER,), now, unpaid_for=limit) == (["inv-oct"] if fires else [])


def test_ageing_helpers() -> None:
    assert period_ended(OCTOBER) == ENDED
    assert unpaid_for(OCTOBER, ENDED - timedelta(days=3)) == timedelta(0)
    assert unpaid_for(OCTOBER, ENDED + timedelta(days=9, hours=4)) == timedelta(days=9, hours=4)


def test_the_finding_names_the_invoice_its_period_and_how_long_unpaid() -> None:
    now = ENDED + timedelta(days=9, hours=4)
    result = judge_invoices(rule(severity="critical"), snapshot(OCTOBER), now)
    (finding,) = result.findings
    assert finding.severity is Severity.CRITICAL
    assert finding.value == "invoice inv-oct for 2026-10-01 – 2026-10-31 unpaid for 9d 4h"
    assert finding.threshold == "alert after 7d unpaid"
    assert finding.facts == {
        "invoice_id": "inv-oct",
        "period": "2026-10-01 – 2026-10-31",
        "unpaid_for": "9d 4h",
    }


def test_not_judged_when_never_read_or_the_read_failed() -> None:
    never = AccountSnapshot("main", provider="telnyx")
    assert not judge_invoices(rule(), never, ENDED).judged
    error = SourceError(SourceName.INVOICES, "GET /invoices: HTTP 503")
    failed = AccountSnapshot("main", invoices=(OCTOBER,), errors={SourceName.INVOICES: error})
    assert not judge_invoices(rule(), failed, ENDED + timedelta(days=30)).judged


def test_a_repeated_id_is_one_alert() -> None:
    assert firing((OCTOBER, OCTOBER), ENDED + timedelta(days=8)) == ["inv-oct"]


def test_lifecycle_fires_per_invoice_and_resolves_when_paid_or_gone() -> None:
    rules = [rule()]
    sep = Invoice("inv-sep", date(2026, 9, 1), date(2026, 9, 30), paid=False)
    now = ENDED + timedelta(days=8)

    def cycle(states: dict, *invoices: Invoice, at: datetime) -> tuple[dict, list]:  # type: ignore[type-arg]
        results = evaluate(rules, [snapshot(*invoices)], at)
        out = step(states, results, at, repeat_interval=timedelta(hours=4))
        return out.states, out.transitions

    states, moved = cycle({}, OCTOBER, sep, at=now)
    assert sorted((t.reason, t.key.group) for t in moved) == [
        (Reason.FIRING, "inv-oct"),
        (Reason.FIRING, "inv-sep"),
    ]
    states, moved = cycle(states, OCTOBER, sep, at=now + timedelta(hours=1))
    assert moved == []  # still unpaid: no repeat within repeat_interval
    paid = Invoice("inv-oct", OCTOBER.period_start, OCTOBER.period_end, paid=True)
    states, moved = cycle(states, paid, at=now + timedelta(hours=2))  # sep is gone
    assert sorted((t.reason, t.key.group) for t in moved) == [
        (Reason.RESOLVED, "inv-oct"),
        (Reason.RESOLVED, "inv-sep"),
    ]
    assert states == {}
    resolved = {t.key.group: render(t, rules[0]) for t in moved}
    assert "now invoice inv-oct for 2026-10-01 – 2026-10-31 paid" in resolved["inv-oct"].body
    assert "the condition no longer holds" in resolved["inv-sep"].body


def test_the_firing_message_says_it_in_a_sentence() -> None:
    results = evaluate([rule()], [snapshot(OCTOBER)], ENDED + timedelta(days=9, hours=4))
    out = step({}, results, ENDED + timedelta(days=9, hours=4), repeat_interval=timedelta(hours=4))
    (transition,) = out.transitions
    message = render(transition, rule())
    assert message.title == "[WARNING] invoice-unpaid firing — main [inv-oct]"
    assert message.body.splitlines()[0] == (
        "Invoice inv-oct for 2026-10-01 – 2026-10-31 unpaid for 9d 4h (alert after 7d unpaid)."
    )


def test_the_invoice_kind_needs_the_invoices_source_and_only_telnyx_offers_it() -> None:
    assert sources_needed([rule()]) == frozenset({SourceName.INVOICES})
    assert sources_needed([rule(enabled=False)]) == frozenset()
    assert TELNYX.offers("invoice") and not VONAGE.offers("invoice")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"unpaid_for": None}, "unpaid_for"),
        ({"unpaid_for": "7"}, "needs a unit"),
        ({"paid": False}, "Extra inputs are not permitted"),
        ({"summary": "{invoice_id} {nope}"}, "unknown placeholder {nope}"),
    ],
)
def test_the_rule_is_checked(extra: dict[str, object], message: str) -> None:
    data = {"name": "x", "kind": "invoice", "unpaid_for": "7d", **extra}
    if extra.get("unpaid_for", "") is None:
        del data["unpaid_for"]
    with pytest.raises(ValidationError, match=message):
        RuleFile.model_validate({"rules": [data]})


def test_a_summary_template_gets_the_invoice_facts() -> None:
    now = ENDED + timedelta(days=9, hours=4)
    custom = rule(summary="{account}: pay {invoice_id} ({period}), unpaid {unpaid_for}")
    results = evaluate([custom], [snapshot(OCTOBER)], now)
    (transition,) = step({}, results, now, repeat_interval=timedelta(hours=4)).transitions
    headline = render(transition, custom).body.splitlines()[0]
    assert headline == "main: pay inv-oct (2026-10-01 – 2026-10-31), unpaid 9d 4h"
