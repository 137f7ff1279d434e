"""The Telnyx charges sources: `GET /charges_summary` and `GET /charges_breakdown` as slow
sources of spend rules, against the simulator on 127.0.0.1 with a real SQLite state in
tmp_path (no patches): what is requested per zone, the cadence, local midnight, the
baseline read once a day, the kept text; and the simulator's shapes against the spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from pydantic import SecretStr

from watcher.core.charges_text import charges_text
from watcher.core.model import Charges, ChargesQuery, SourceName
from watcher.core.rules import RuleFile, evaluate
from watcher.core.spend import charges_queries
from watcher.providers.base import Collected, Needs
from watcher.providers.telnyx import charges
from watcher.providers.telnyx.client import TelnyxClient, TelnyxError
from watcher.providers.telnyx.sim import Fault, SimAccount, SimServer
from watcher.providers.telnyx.sources import collect
from watcher.state.store import Store

SPEC = yaml.safe_load((Path(__file__).parent / "data" / "telnyx-account.openapi.yaml").read_text())
KEY = "sim-charges-key"
NY = "America/New_York"
NOW = datetime(2026, 11, 9, 17, 0, tzinfo=UTC)  # 12:00 in New York, Monday 9 November
SOURCES = frozenset({SourceName.CHARGES, SourceName.CHARGES_BREAKDOWN})
D = Decimal


@pytest.fixture
def server() -> Iterator[SimServer]:
    with SimServer(SimAccount(api_key=KEY)) as running:
        yield running


def script(server: SimServer) -> None:
    """A week of charges in November: 10 a day of Voice; today 150 of Messaging."""
    sim = server.account.charges
    for day in range(1, 9):
        sim.add(date(2026, 11, day), "Voice", "10.00", number="+15550000001")
    sim.add(date(2026, 11, 9), "Messaging", "150.00", number="+15550000002")
    sim.add(date(2026, 11, 9), "Voice", "5.50", number="+15550000001")
    sim.add(date(2026, 11, 9), "Local DIDs", "1.00", comparative=True)


def commit(store: Store, collected: Collected) -> None:
    with store.transaction():
        for source, cursor in collected.cursors.items():
            store.set_cursor("main", str(source), cursor)
        for source, resume in collected.resumes.items():
            store.set_resume("main", str(source), resume)


async def poll(
    server: SimServer, store: Store, at: datetime, queries: tuple[ChargesQuery, ...]
) -> Collected:
    needs = Needs(
        sources=SOURCES
        if any(q.numbers for q in queries)
        else SOURCES - {SourceName.CHARGES_BREAKDOWN},
        charges=queries,
    )
    async with TelnyxClient(base_url=server.base_url, api_key=SecretStr(KEY)) as telnyx:
        got = await collect("main", telnyx, store, needs, at, first_start=at)
    commit(store, got)
    return got


_SEEN: dict[int, int] = {}


def asked(server: SimServer) -> list[str]:
    """The charges requests since the last call, as `path start..end`."""
    requests = server.account.requests
    new, _SEEN[id(server)] = requests[_SEEN.get(id(server), 0) :], len(requests)
    return sorted(  # the summary and the breakdown are read concurrently
        f"{r.path} {r.query['start_date']}..{r.query.get('end_date', '')}"
        for r in new
        if r.path.startswith("/charges")
    )


DAY_MONTH = (ChargesQuery(NY, day=True, month=True, baselines=(7,), numbers=True),)


async def test_a_zone_is_read_by_its_local_dates_with_products_and_numbers(
    server: SimServer, tmp_path: Path
) -> None:
    script(server)
    store = Store.open(tmp_path / "state.db")
    got = await poll(server, store, NOW, DAY_MONTH)
    assert asked(server) == sorted(
        [
            "/charges_summary 2026-11-09..2026-11-10",
            "/charges_summary 2026-11-01..2026-11-10",
            "/charges_summary 2026-11-02..2026-11-09",
            "/charges_breakdown 2026-11-01..2026-11-10",
        ]
    )
    assert got.snapshot.charges is not None
    read = got.snapshot.charges[NY]
    assert (read.day, read.today, read.month, read.before(7)) == (
        date(2026, 11, 9),
        D("156.50"),
        D("236.50"),
        D("70.00"),
    )
    assert read.today_products == (
        ("Messaging", D("150.00")),
        ("Voice", D("5.50")),
        ("Local DIDs", D("1.00")),
    )
    assert read.numbers == (("+15550000002", D("150.00")), ("+15550000001", D("85.50")))
    assert {SourceName.CHARGES, SourceName.CHARGES_BREAKDOWN} <= got.succeeded
    store.close()


async def test_slow_cadence_baseline_once_a_day_and_local_midnight(
    server: SimServer, tmp_path: Path
) -> None:
    script(server)
    store = Store.open(tmp_path / "state.db")
    first = await poll(server, store, NOW, DAY_MONTH)
    asked(server)
    between = await poll(server, store, NOW + timedelta(minutes=9), DAY_MONTH)
    assert asked(server) == []  # not due: the kept read is judged
    assert between.snapshot.charges == first.snapshot.charges
    await poll(server, store, NOW + timedelta(minutes=10), DAY_MONTH)
    assert asked(server) == sorted(
        [  # the baseline of today is kept
            "/charges_summary 2026-11-09..2026-11-10",
            "/charges_summary 2026-11-01..2026-11-10",
            "/charges_breakdown 2026-11-01..2026-11-10",
        ]
    )
    midnight = datetime(2026, 11, 10, 5, 0, tzinfo=UTC)  # 00:00 in New York
    await poll(server, store, midnight - timedelta(minutes=1), DAY_MONTH)
    assert "/charges_summary 2026-11-09..2026-11-10" in asked(server)
    new_day = await poll(server, store, midnight + timedelta(minutes=1), DAY_MONTH)
    assert asked(server) == sorted(
        [  # the period rolled over: read at once, with the baseline
            "/charges_summary 2026-11-10..2026-11-11",
            "/charges_summary 2026-11-01..2026-11-11",
            "/charges_summary 2026-11-03..2026-11-10",
            "/charges_breakdown 2026-11-01..2026-11-11",
        ]
    )
    assert new_day.snapshot.charges is not None
    assert new_day.snapshot.charges[NY].today == D("0.00")
    store.close()


async def test_on_the_first_of_the_month_one_request_is_the_day_and_the_month(
    server: SimServer, tmp_path: Path
) -> None:
    store = Store.open(tmp_path / "state.db")
    first = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # 09:30 on 1 December in Tokyo
    query = (ChargesQuery("Asia/Tokyo", day=True, month=True),)
    got = await poll(server, store, first, query)
    assert asked(server) == ["/charges_summary 2026-12-01..2026-12-02"]
    assert got.snapshot.charges is not None
    assert got.snapshot.charges["Asia/Tokyo"].month == D("0.00")
    store.close()


async def test_a_failed_read_is_a_failure_kept_read_stays_and_is_tried_again(
    server: SimServer, tmp_path: Path
) -> None:
    script(server)
    store = Store.open(tmp_path / "state.db")
    first = await poll(server, store, NOW, DAY_MONTH)
    server.account.inject_fault("/charges_summary", Fault.status(400), times=2)
    later = NOW + timedelta(minutes=10)
    failed = await poll(server, store, later, DAY_MONTH)
    assert SourceName.CHARGES in failed.failures
    assert failed.snapshot.charges == first.snapshot.charges  # the kept read (the rule
    asked(server)  # is not judged while the source failed: see test_spend_rules)
    await poll(server, store, later + timedelta(minutes=1), DAY_MONTH)
    assert "/charges_summary 2026-11-09..2026-11-10" in asked(server)  # still due
    store.close()


async def test_charges_are_not_read_when_no_rule_needs_them(
    server: SimServer, tmp_path: Path
) -> None:
    store = Store.open(tmp_path / "state.db")
    async with TelnyxClient(base_url=server.base_url, api_key=SecretStr(KEY)) as telnyx:
        got = await collect("main", telnyx, store, Needs(sources=frozenset()), NOW, first_start=NOW)
    assert asked(server) == [] and got.snapshot.charges is None
    store.close()


def test_the_kept_text_round_trips(tmp_path: Path) -> None:
    read = Charges(
        NY,
        date(2026, 11, 9),
        "USD",
        D("156.50"),
        None,
        (("Messaging", D("150.00")),),
        (),
        ((3, D("30.00")), (7, D("70.00"))),
    )
    text = charges_text({NY: read})
    assert json.loads(text)["zones"][0]["today"] == "156.50"
    with Store.open(tmp_path / "state.db") as store:
        with store.transaction():
            store.set_resume("main", "charges", text)
        assert charges.kept_charges(store, "main") == {NY: read}
        with store.transaction():
            store.set_resume("main", "charges", '{"zones": [{"tz": "UTC"}]}')
        assert charges.kept_charges(store, "main") is None  # unreadable: read again
    numbers: charges.Numbers = {NY: (date(2026, 11, 9), (("+15550000002", D("150.00")),))}
    assert charges.numbers_text(numbers).startswith('{"zones":')
    with_n = charges.with_numbers({NY: read}, numbers)
    assert with_n[NY].numbers == (("+15550000002", D("150.00")),)
    assert charges.with_numbers({NY: read}, {NY: (date(2026, 11, 8), ())})[NY].numbers == ()


# ---------------------------------------------------------------------------- client


def mock_client(body: Any, status: int = 200) -> TelnyxClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=json.dumps(body).encode())

    return TelnyxClient(
        base_url="https://api.telnyx.test/v2",
        api_key=SecretStr("K"),
        transport=httpx.MockTransport(answer),
    )


def spec_example_summary() -> dict[str, Any]:
    """The summary of the spec's examples (a comparative and a simple line)."""
    summary = SPEC["components"]["schemas"]["Summary"]["example"]
    return {
        "data": {
            "user_id": "0db0b4aa-a83d-4d4f-ad9b-3ba7c1ac2ce8",
            "user_email": "user@example.com",
            "currency": "USD",
            "start_date": "2025-05-01",
            "end_date": "2025-06-01",
            "summary": summary,
            "total": {
                "new_mrc": "50.00",
                "new_otc": "25.00",
                "existing_mrc": "100.00",
                "other": "10.00",
                "credits": "-5.00",
                "ledger_adjustments": "0.00",
                "grand_total": "180.00",
            },
        }
    }


async def test_the_spec_example_gives_the_grand_total_and_products() -> None:
    async with mock_client(spec_example_summary()) as telnyx:
        got = await telnyx.get_charges_summary(date(2025, 5, 1), date(2025, 6, 1))
    assert got.total == D("180.00") and got.currency == "USD"
    assert got.parts == (("Local DIDs", D("50.50")), ("Port Out", D("15.75")))  # 25.50+5+20


async def test_money_as_a_json_number_is_a_shape_error() -> None:
    body = spec_example_summary()
    body["data"]["total"]["grand_total"] = 180.0
    async with mock_client(body) as telnyx:
        with pytest.raises(TelnyxError, match="unexpected shape"):
            await telnyx.get_charges_summary(date(2025, 5, 1), date(2025, 6, 1))


# ---------------------------------------------------------------------------- simulator


def schema(path: str) -> dict[str, Any]:
    answer = SPEC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    return {**answer["schema"], "components": SPEC["components"]}


def get(server: SimServer, path: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{server.base_url}{path}", params=params, headers={"Authorization": f"Bearer {KEY}"}
    )


@pytest.mark.parametrize("path", ["/charges_summary", "/charges_breakdown"])
def test_the_simulator_answers_in_the_spec_shape(server: SimServer, path: str) -> None:
    script(server)
    answer = get(server, path, start_date="2026-11-01", end_date="2026-11-10")
    assert answer.status_code == 200
    jsonschema.validate(answer.json(), schema(path))


@pytest.mark.parametrize(
    ("params", "status"),
    [
        pytest.param(
            {"start_date": "2026-11-01", "end_date": "2026-12-03"}, 422, id="over-31-days"
        ),
        pytest.param({"start_date": "2026-11-01"}, 400, id="no-end"),
        pytest.param({"start_date": "1 Nov", "end_date": "2026-11-03"}, 400, id="not-a-date"),
    ],
)
def test_the_simulator_refuses_bad_ranges(
    server: SimServer, params: dict[str, str], status: int
) -> None:
    assert get(server, "/charges_summary", **params).status_code == status


def test_the_breakdown_defaults_to_a_month(server: SimServer) -> None:
    script(server)
    answer = get(server, "/charges_breakdown", start_date="2026-11-01")
    assert answer.json()["data"]["end_date"] == "2026-12-01"


async def test_two_spike_baselines_in_one_zone_are_both_read(
    server: SimServer, tmp_path: Path
) -> None:
    script(server)
    store = Store.open(tmp_path / "state.db")
    rules = RuleFile.model_validate(
        {
            "rules": [
                {"name": n, "kind": "spend", "period": "day", "timezone": NY, "spike": s}
                for n, s in [
                    ("short", {"factor": 2, "baseline": "3d"}),
                    ("long", {"factor": 2, "baseline": "7d"}),
                ]
            ]
        }
    ).rules
    got = await poll(server, store, NOW, charges_queries(rules))
    assert "/charges_summary 2026-11-06..2026-11-09" in asked(server)
    results = evaluate(rules, [got.snapshot], NOW)
    judged = {r.rule: r.judged for r in results if r.rule in ("short", "long")}
    assert judged == {"short": True, "long": True}
    means = {
        r.rule: r.findings[0].facts["baseline"] for r in results if r.rule in ("short", "long")
    }
    assert means == {"short": "10.00", "long": "10.00"}
    store.close()
