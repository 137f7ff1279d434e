"""Which accounts a rule's `accounts:` takes: exact names or globs (`reseller/*`).

Discovered accounts (DESIGN §10) are named `<parent>/<child>` and unknown to `check`,
so a rule selects them by a glob; `may_select_children` is what `check` can say about a
pattern before anything was discovered. Pure; imports nothing of ours.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    """True when an `accounts:` entry is a glob (`*`, `?` or `[...]`), not a name."""
    return any(c in _GLOB_CHARS for c in pattern)


def selects(patterns: Sequence[str] | None, account: str) -> bool:
    """Whether a rule's `accounts:` (None: every account) takes `account`: an exact
    name, or a glob matched case-sensitively (`reseller/*` takes `reseller/alice`; as
    in shell globs `*` matches any text, `/` included)."""
    if patterns is None:
        return True
    return any(p == account or (is_glob(p) and fnmatch.fnmatchcase(account, p)) for p in patterns)


def may_select_children(pattern: str, parent: str) -> bool:
    """Whether `pattern` can select discovered children of `parent` (named
    `<parent>/...`): a name under `<parent>/`, or a glob whose fixed start (the text
    before its first `*`, `?` or `[`) agrees with `<parent>/` (`reseller/*`, `res*`,
    `*/alice`; not `other/*`)."""
    prefix = f"{parent}/"
    if not is_glob(pattern):
        return pattern.startswith(prefix) and len(pattern) > len(prefix)
    fixed = pattern[: min(pattern.index(c) for c in _GLOB_CHARS if c in pattern)]
    return prefix.startswith(fixed) or fixed.startswith(prefix)
