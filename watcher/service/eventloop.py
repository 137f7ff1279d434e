"""The event loop `run` and `once` run on: uvloop's (libuv, in C) where it is installed,
else asyncio's own. A steady-state cycle spends much of its CPU in the loop (waking on
each answer, the transports' reads and writes, timers); uvloop's costs a fraction of
that (`bench/scale.py`: 3.37 → 2.94 ms per account-cycle at 1,000 accounts, measured
when it was chosen). `WATCHER_EVENT_LOOP=asyncio` keeps asyncio's loop (to rule the
loop out when looking into a problem).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "WATCHER_EVENT_LOOP"


def loop_factory(
    environ: Mapping[str, str] | None = None,
) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop unless `WATCHER_EVENT_LOOP=asyncio` or uvloop is missing."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    if env.get(ENV, "").strip().lower() != "asyncio":
        try:
            import uvloop
        except ImportError:  # not installed (e.g. a platform without wheels)
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop of `loop_factory()`."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def loop_name() -> str:
    """The running loop's kind, for the start-up log line: "uvloop" or "asyncio"."""
    return (
        "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
    )
