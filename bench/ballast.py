"""`account-watcher` with inert memory beside every account: a control for
`bench/scale.py --ballast KB`.

After each account's provider is built, `BENCH_BALLAST_KB` kibibytes of small Python
objects (dicts of short strings and tuples, about 400 bytes an entry, as the daemon's own
per-account objects are) are allocated and kept, never touched again. The daemon does
exactly the work it does without them; only its heap is larger and each account's
objects lie farther apart. `bench/scale.py --sizes 100 --ballast 360` gives 100 accounts
the heap of 1,000 (about 40 KB an account), to tell a per-account cost that grows with
the number of accounts from one that grows with the size of the heap.

    .venv/bin/python bench/scale.py --sizes 100 --ballast 360 [--repeat 3] [--pin]
"""

from __future__ import annotations

import os
import sys
from typing import Any

from watcher.providers import registry
from watcher.providers.base import Provider

ENTRY_BYTES = 400
"""About what one entry below takes (a dict of two keys, a short str, a tuple)."""

_kept: list[list[dict[str, object]]] = []


def _with_ballast(kib: int) -> None:
    build = registry.build
    entries = kib * 1024 // ENTRY_BYTES

    def built(account: Any, secrets: Any, options: Any) -> Provider:
        provider = build(account, secrets, options)
        _kept.append([{"k": str(i) * 3, "v": (i, str(i))} for i in range(entries)])
        return provider

    registry.build = built


def main() -> None:
    _with_ballast(int(os.environ.get("BENCH_BALLAST_KB", "0")))
    from watcher.__main__ import main as watcher_main

    sys.argv[0] = "account-watcher"
    watcher_main()


if __name__ == "__main__":
    main()
