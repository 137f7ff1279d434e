"""The daily digest's pure parts (watcher/core/digest.py, digest_text.py): `at`, the due
logic (on time, catch-up under 12 h, skip at 12 h, DST days, zones) and the text (time as
a parameter, a non-UTC zone, day boundaries, more than 10 accounts, an empty day)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from watcher.core.digest import (
    AccountDay,
    Happening,
    Sample,
    Verdict,
    due,
    happenings,
    parse_at,
    spent,
)
from watcher.core.digest_text import messages
from watcher.core.findings import Finding
from watcher.core.holds import Hold, HoldKind
from watcher.core.ledger_types import Entry, EntryState
from watcher.core.lifecycle import Reason, Transition
from watcher.core.model import AlertKey, AlertState, CredentialChange, Phase, Severity

BERLIN = "Europe/Berlin"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- at


@pytest.mark.parametrize(
    ("text", "hour", "minute", "zone"),
    [
        ("08:00 Europe/Berlin", 8, 0, BERLIN),
        ("8:05", 8, 5, "UTC"),
        ("23:59 UTC", 23, 59, "UTC"),
        ("  07:30   America/New_York ", 7, 30, "America/New_York"),
    ],
)
def test_parse_at(text: str, hour: int, minute: int, zone: str) -> None:
    at = parse_at(text)
    assert (at.hour, at.minute, at.zone_name) == (hour, minute, zone)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("24:00", "is not a time of day"),
        ("08:60 UTC", "is not a time of day"),
        ("eight", "is not a time of day"),
        ("08:00 Europe/Berln", "unknown time zone 'Europe/Berln'"),
        ("08:00 UTC extra", "is not a time of day"),
    ],
)
def test_parse_at_rejects(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_at(text)


# ---------------------------------------------------------------------------- due

# (at, now (UTC), last recorded day, verdict, day it is about, minutes late)
DUE_CASES = [
    # 08:00 Berlin is 07:00 UTC in winter
    (
        "08:00 Europe/Berlin",
        "2026-12-01T06:59:00",
        "2026-11-30",
        Verdict.NOT_YET,
        "2026-11-30",
        None,
    ),
    ("08:00 Europe/Berlin", "2026-12-01T07:00:00", "2026-11-30", Verdict.SEND, "2026-12-01", 0),
    ("08:00 Europe/Berlin", "2026-12-01T07:01:00", "2026-11-30", Verdict.SEND, "2026-12-01", 1),
    ("08:00 Europe/Berlin", "2026-12-01T07:02:00", "2026-12-01", Verdict.SENT, "2026-12-01", 2),
    # down over the hour: caught up at start-up when less than 12 h late ...
    ("08:00 Europe/Berlin", "2026-12-01T18:59:00", "2026-11-30", Verdict.SEND, "2026-12-01", 719),
    # ... skipped at 12 h or more
    ("08:00 Europe/Berlin", "2026-12-01T19:00:00", "2026-11-30", Verdict.SKIP, "2026-12-01", 720),
    ("08:00 Europe/Berlin", "2026-12-02T05:00:00", "2026-11-30", Verdict.SKIP, "2026-12-01", 1320),
    # a fresh state (nothing recorded): the latest one, if it is recent enough
    ("08:00 Europe/Berlin", "2026-12-01T10:00:00", None, Verdict.SEND, "2026-12-01", 180),
    ("08:00 Europe/Berlin", "2026-12-01T03:00:00", None, Verdict.SKIP, "2026-11-30", 1200),
    # a late `at`: after midnight UTC the catch-up is still yesterday's (local) digest
    ("23:59 UTC", "2026-12-02T00:00:00", "2026-11-30", Verdict.SEND, "2026-12-01", 1),
    ("23:59 UTC", "2026-12-02T00:00:00", "2026-12-01", Verdict.NOT_YET, "2026-12-01", 1),
    # a zone east of UTC: 00:30 Tokyo on Dec 2 is 15:30 UTC on Dec 1
    ("00:30 Asia/Tokyo", "2026-12-01T15:30:00", "2026-12-01", Verdict.SEND, "2026-12-02", 0),
    # DST: 08:00 Berlin is 06:00 UTC in summer; the spring-forward day (2026-03-29) has
    # 08:00 at 06:00 UTC, and a 02:30 that does not exist happens at 03:30 CEST (01:30 UTC)
    ("08:00 Europe/Berlin", "2026-03-29T06:00:00", "2026-03-28", Verdict.SEND, "2026-03-29", 0),
    (
        "08:00 Europe/Berlin",
        "2026-03-29T05:59:00",
        "2026-03-28",
        Verdict.NOT_YET,
        "2026-03-28",
        None,
    ),
    (
        "02:30 Europe/Berlin",
        "2026-03-29T01:29:00",
        "2026-03-28",
        Verdict.NOT_YET,
        "2026-03-28",
        None,
    ),
    ("02:30 Europe/Berlin", "2026-03-29T01:30:00", "2026-03-28", Verdict.SEND, "2026-03-29", 0),
    # fall-back day (2026-10-25): 02:30 occurs twice, the first (00:30 UTC) counts, once
    ("02:30 Europe/Berlin", "2026-10-25T00:30:00", "2026-10-24", Verdict.SEND, "2026-10-25", 0),
    ("02:30 Europe/Berlin", "2026-10-25T01:30:00", "2026-10-25", Verdict.SENT, "2026-10-25", 60),
]


@pytest.mark.parametrize(("at", "now", "last", "verdict", "day", "late"), DUE_CASES)
def test_due(
    at: str, now: str, last: str | None, verdict: Verdict, day: str, late: int | None
) -> None:
    answer = due(parse_at(at), utc(now), None if last is None else date.fromisoformat(last))
    assert answer.verdict is verdict
    assert answer.day == date.fromisoformat(day)
    if late is not None:
        assert answer.late == timedelta(minutes=late)


def test_due_once_per_local_day_over_a_dst_week() -> None:
    """Every minute through the spring-forward week: exactly one SEND per local day."""
    at = parse_at("08:00 Europe/Berlin")
    now, last, sent = utc("2026-03-26T00:00:00"), date(2026, 3, 25), []
    while now < utc("2026-04-02T00:00:00"):
        answer = due(at, now, last)
        if answer.verdict is Verdict.SEND:
            sent.append((answer.day, now))
            last = answer.day
        now += timedelta(minutes=1)
    assert [d for d, _ in sent] == [date(2026, 3, d) for d in range(26, 32)] + [date(2026, 4, 1)]
    assert {f"{n.astimezone(at.zone):%H:%M}" for _, n in sent} == {"08:00"}


# ---------------------------------------------------------------------------- history


def test_happenings_keep_news_not_repeats() -> None:
    key = AlertKey("low-credit", "main")
    fired = utc("2026-12-01T03:00:00")
    state = AlertState(key, Phase.FIRING, Severity.CRITICAL, fired, fired_at=fired, value="9 USD")
    creds = Finding(
        AlertKey("new-secret", "eu"),
        Severity.WARNING,
        credential_changes=(CredentialChange("ab12", "added"),),
    )
    transitions = [
        Transition(Reason.FIRING, key, Severity.CRITICAL, fired, state),
        Transition(Reason.REPEAT, key, Severity.CRITICAL, fired + timedelta(hours=4), state),
        Transition(Reason.RESOLVED, key, Severity.CRITICAL, fired + timedelta(hours=5), state),
        Transition(Reason.EVENTS, creds.key, Severity.WARNING, fired, None, creds),
    ]
    got = happenings(transitions, {"low-credit": "balance", "new-secret": "credentials"})
    assert [(h.reason, h.kind, h.value, h.detail) for h in got] == [
        (Reason.FIRING, "balance", "9 USD", ""),
        (Reason.RESOLVED, "balance", "9 USD", "fired 5h"),
        (Reason.EVENTS, "credentials", "", "secret ab12 added"),
    ]


@pytest.mark.parametrize(
    ("values", "total"),
    [
        ([], "0"),
        (["100"], "0"),
        (["100", "90", "85"], "15"),
        (["100", "90", "190", "180"], "20"),  # the top-up (+100) is cut out
        (["50", "60"], "0"),  # a rise alone is no negative spend
    ],
)
def test_spent_cuts_out_rises(values: list[str], total: str) -> None:
    start = utc("2026-12-01T00:00:00")
    points = [(start + timedelta(hours=i), Decimal(v)) for i, v in enumerate(values)]
    assert spent(points) == Decimal(total)


# ---------------------------------------------------------------------------- text

NOW = utc("2026-12-01T07:00:00")  # 08:00 in Berlin
AT = parse_at("08:00 Europe/Berlin")


def samples(*points: tuple[str, str]) -> tuple[Sample, ...]:
    return tuple((utc(at), Decimal(value), Decimal(value)) for at, value in points)


QUIET = AccountDay(
    "main",
    "USD",
    samples(
        ("2026-11-30T06:30:00", "500"),
        ("2026-11-30T07:10:00", "500"),
        (
            "2026-12-01T06:59:00",
            "480",
        ),
    ),
)


def test_empty_day_is_one_line_with_the_balance() -> None:
    [message] = messages([QUIET], NOW, AT)
    assert message.title == "[INFO] daily digest — main (2026-12-01)"
    assert message.body == (
        "main: balance 480.00 USD (24 h ago 500.00 USD, -20.00); spend 20.00 USD in 24 h"
        " — nothing happened"
    )
    assert message.severity is Severity.INFO and message.account == "main"


def test_no_sample_still_one_line() -> None:
    [message] = messages([AccountDay("eu", "EUR")], NOW, AT)
    assert message.body == (
        "eu: balance unknown (no sample in the last 24 h); spend 0.00 EUR in 24 h"
        " — nothing happened"
    )


def test_busy_day_lists_every_kind_of_news_in_local_time() -> None:
    key = AlertKey("low-credit", "main")
    drift = AlertState(
        AlertKey("auto-recharge-drift", "main"),
        Phase.FIRING,
        Severity.CRITICAL,
        utc("2026-12-01T02:00:00"),
        value="auto_recharge.enabled: false → true",
        threshold="expected auto_recharge.enabled false",
    )
    day = AccountDay(
        "main",
        "USD",
        samples(
            ("2026-11-30T07:00:00", "500"),
            ("2026-12-01T01:00:00", "400"),
            ("2026-12-01T02:00:00", "45"),
            ("2026-12-01T03:00:00", "145"),
            ("2026-12-01T06:00:00", "140"),
            ("2026-12-01T07:00:00", "139"),
        ),
        happenings=(
            Happening(
                utc("2026-11-30T22:30:00"),
                key,
                Reason.FIRING,
                Severity.CRITICAL,
                "balance",
                "45.00 USD",
            ),
            Happening(
                utc("2026-12-01T03:05:00"),
                key,
                Reason.RESOLVED,
                Severity.CRITICAL,
                "balance",
                "145.00 USD",
                "fired 4h 35m",
            ),
            Happening(
                utc("2026-12-01T04:00:00"),
                AlertKey("new-secret", "main"),
                Reason.EVENTS,
                Severity.WARNING,
                "credentials",
                "",
                "secret ab12 added",
            ),
        ),
        drift=(drift,),
        topups=(
            Entry(
                1,
                "main",
                Decimal("100.00"),
                "USD",
                EntryState.SUCCEEDED,
                utc("2026-12-01T02:01:00"),
                "low-credit",
                "critical",
            ),
            Entry(
                2,
                "main",
                Decimal("100.00"),
                "USD",
                EntryState.REFUSED,
                utc("2026-12-01T05:30:00"),
                "low-credit",
                "held: top-ups of main are held by unexpected-config-change",
            ),
        ),
        holds=(
            Hold(
                7,
                "main",
                HoldKind.RULE,
                "unexpected-config-change",
                "e1",
                "audit event x",
                utc("2026-12-01T05:00:00"),
                utc("2026-12-01T05:00:00"),
            ),
        ),
        undelivered=2,
    )
    [message] = messages([day], NOW, AT)
    assert message.body.splitlines() == [
        "the last 24 h to 2026-12-01 08:00 Europe/Berlin",
        "",
        "main: balance 139.00 USD (24 h ago 500.00 USD, -361.00)",
        "  spend 461.00 USD in 24 h",
        "  runway: about 2h 18m at 60.17 USD/h (spend of the last 6 h)",
        "  alerts fired: 1",
        "    yesterday 23:30 low-credit fired (critical): 45.00 USD",
        "  alerts resolved: 1",
        "    04:05 low-credit resolved (fired 4h 35m)",
        "  top-ups: 2",
        "    03:01 100.00 USD succeeded (low-credit)",
        "    06:30 100.00 USD refused: held (low-credit)",
        "  holds: 1",
        "    unexpected-config-change since 06:00, active until tomorrow 06:00",
        "  drift: 1",
        "    auto-recharge-drift: auto_recharge.enabled: false → true"
        " (expected auto_recharge.enabled false)",
        "  credential changes: 1",
        "    05:00 new-secret: secret ab12 added",
        "  undelivered notifications: 2",
    ]


def test_day_boundary_is_local() -> None:
    """23:30 UTC on Nov 30 is 00:30 in Berlin on Dec 1: today, not yesterday."""
    h = Happening(
        utc("2026-11-30T23:30:00"),
        AlertKey("r", "main"),
        Reason.FIRING,
        Severity.WARNING,
        "balance",
    )
    [message] = messages([AccountDay("main", "USD", happenings=(h,))], NOW, AT)
    assert "    00:30 r fired (warning)" in message.body.splitlines()
    [utc_message] = messages([AccountDay("main", "USD", happenings=(h,))], NOW, parse_at("07:00"))
    assert "    yesterday 23:30 r fired (warning)" in utc_message.body.splitlines()


def test_more_than_ten_accounts_make_one_message() -> None:
    days = [AccountDay(f"acct-{i:02d}", "USD", QUIET.samples) for i in range(11)]
    days[3] = AccountDay("acct-03", "USD", QUIET.samples, undelivered=1)
    [message] = messages(days, NOW, AT)
    assert message.title == "[INFO] daily digest — 11 accounts (2026-12-01)"
    lines = message.body.splitlines()
    quiet = [line for line in lines if line.endswith("nothing happened")]
    assert len(quiet) == 10 and quiet[0].startswith("acct-00: balance 480.00 USD")
    assert "acct-03: balance 480.00 USD (24 h ago 500.00 USD, -20.00)" in lines
    assert lines[-1] == "11 accounts, 10 with nothing to report"
    assert len(messages(days[:10], NOW, AT)) == 10


def test_title_names_the_day_it_is_for() -> None:
    [message] = messages(
        [QUIET], utc("2026-12-02T00:00:30"), parse_at("23:59"), day=date(2026, 12, 1)
    )
    assert message.title == "[INFO] daily digest — main (2026-12-01)"


def test_provider_spend_figure_stands_beside_the_samples() -> None:
    day = AccountDay(
        "main",
        "USD",
        QUIET.samples,
        spend_today=Decimal("12.5"),
        spend_since=" (since 00:00 UTC)",
        top_products=(
            ("voice", Decimal("8")),
            ("messaging", Decimal("4.5")),
            ("numbers", Decimal("0")),
        ),
    )
    [message] = messages([day], NOW, AT)
    assert (
        "; charges today (since 00:00 UTC) 12.50 USD (top: voice 8.00, messaging 4.50, "
        "numbers 0.00)"
    ) in message.body
    assert " in 24 h; charges today" in message.body


def test_old_unreleased_hold_that_ended_is_not_news() -> None:
    old = Hold(
        1,
        "main",
        HoldKind.RULE,
        "audit",
        "e0",
        "event",
        utc("2026-11-20T00:00:00"),
        utc("2026-11-20T00:00:00"),
    )
    manual = Hold(
        2,
        "main",
        HoldKind.MANUAL,
        "manual",
        "m",
        "by hand",
        utc("2026-11-20T00:00:00"),
        utc("2026-11-20T00:00:00"),
        held_by="ops",
    )
    [quiet] = messages([AccountDay("main", "USD", QUIET.samples, holds=(old,))], NOW, AT)
    assert quiet.body.endswith("nothing happened")
    [held] = messages([AccountDay("main", "USD", QUIET.samples, holds=(manual,))], NOW, AT)
    assert "    manual since 2026-11-20 01:00, active" in held.body.splitlines()


def test_balance_without_a_sample_24h_old_names_its_first_sample() -> None:
    """An account watched for less than 24 h: the earlier balance is its first sample,
    and the line says when that was instead of "24 h ago"."""
    young = AccountDay(
        "main", "USD", samples(("2026-12-01T03:00:00", "500"), ("2026-12-01T06:59:00", "480"))
    )
    [message] = messages([young], NOW, AT)
    assert message.body.startswith(
        "main: balance 480.00 USD (at 04:00, the first sample: 500.00 USD, -20.00);"
    )
