"""The cost of acks and escalation in the pure decide step, by number of firing alerts.

Every alert fires on its own account, every one has an ack (half of them announced) and
an `escalate` rule; one decide step per row, with and without the acks. Prints a table:
alerts, ms per decide without acks, with acks.

    .venv/bin/python bench/acks.py
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import TypeAdapter

from watcher.core.decide import Policy, RouteSpec, decide
from watcher.core.model import AccountSnapshot, Ack, AlertKey, AlertState, Balance, Phase, Severity
from watcher.core.rules import Rule, evaluate

T0 = datetime(2026, 12, 1, tzinfo=UTC)
RULE: Rule = TypeAdapter(Rule).validate_python(
    {
        "name": "low",
        "kind": "balance",
        "below": 100,
        "route": "ops",
        "escalate": {"after": "30m", "route": "pager"},
    }
)
POLICY = Policy(
    rules=[RULE],
    repeat_interval=timedelta(hours=4),
    routes={"ops": RouteSpec(), "pager": RouteSpec()},
)


def world(n: int) -> tuple[list[AccountSnapshot], dict[AlertKey, AlertState], list[Ack]]:
    money = Decimal("80")
    snaps = [
        AccountSnapshot(f"a{i}", Balance(money, money, Decimal(0), Decimal(0), "USD"))
        for i in range(n)
    ]
    keys = [AlertKey("low", f"a{i}") for i in range(n)]
    states = {
        k: AlertState(
            k,
            Phase.FIRING,
            Severity.WARNING,
            T0,
            T0,
            T0,
            Severity.WARNING,
            notified_routes=("ops",),
        )
        for k in keys
    }
    acks = [
        Ack(i, k, T0, Severity.WARNING, "alice", "on it", T0, T0 + timedelta(days=1), i % 2 == 0)
        for i, k in enumerate(keys)
    ]
    return snaps, states, acks


def ms(n: int, *, with_acks: bool) -> float:
    snaps, states, acks = world(n)
    now = T0 + timedelta(hours=1)
    results = evaluate([RULE], snaps, now)
    start = time.perf_counter()
    decide(states, results, snaps, now, POLICY, acks=acks if with_acks else ())
    return 1000 * (time.perf_counter() - start)


def main() -> None:
    print(f"{'alerts':>7} {'no acks ms':>11} {'acks ms':>9}")
    for n in (10, 100, 1000, 5000):
        print(f"{n:>7} {ms(n, with_acks=False):>11.1f} {ms(n, with_acks=True):>9.1f}")


if __name__ == "__main__":
    main()
