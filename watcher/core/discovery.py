"""Discovered accounts (DESIGN §10), the pure part: names, the known-set diff, globs.

A parent account with `managed_accounts: true` (Telnyx) or `subaccounts: true` (Vonage)
watches every child its provider lists, each as an account named
`<parent>/<slug of email, id or api key>`. `child_name` makes that name; `diff`
compares a fresh listing with the known set kept in the state; `gone_message` is the
one notification for a child that is no longer listed. The `accounts:` globs of rules
are `watcher.core.accountmatch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from watcher.core.lifecycle import Reason
from watcher.core.model import Severity
from watcher.core.render import Message, when

__all__ = [
    "GONE_RULE",
    "Change",
    "Known",
    "child_name",
    "diff",
    "gone_message",
    "slug",
    "telnyx_label",
]

GONE_RULE = "watcher-account-gone"
"""The built-in rule name of the notification for a discovered account that went away."""

_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_CODES = {".": "_dot_", "@": "_at_", "_": "_u_"}


def slug(text: str) -> str:
    """`text` as an account-name part (`[a-z0-9_-]+`), injectively: `a-z`, `0-9` and
    `-` stay, `.` → `_dot_`, `@` → `_at_`, `_` → `_u_`, any other character → `_xHH_` per
    UTF-8 byte (lowercase hex). Every `_` starts one of these codes and no code is a
    prefix of another, so two different texts never share a slug.

    E.g. `alice.smith@example.com` → `alice_dot_smith_at_example_dot_com`.
    """
    return "".join(_code(c) for c in text)


def _code(char: str) -> str:
    if char in _LITERAL:
        return char
    return _CODES.get(char) or "".join(f"_x{b:02x}_" for b in char.encode())


def child_name(parent: str, label: str) -> str:
    """The account name of a discovered child: `<parent>/<slug(label)>`.

    `label` is what the provider identifies the child by: a Telnyx managed account's
    email, lowercased (e-mail addresses are compared without case), or its id when it has
    none; a Vonage subaccount's api key (as given).
    """
    return f"{parent}/{slug(label)}"


def telnyx_label(email: str | None, account_id: str) -> str:
    """What a Telnyx managed account is named by: its email (lowercased), else its id."""
    return email.strip().lower() if email and email.strip() else account_id


@dataclass(frozen=True, slots=True)
class Known:
    """A child in the known set (the state): when it was last listed, and since when it
    is gone (None: listed in the last successful listing)."""

    name: str
    parent: str
    gone_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What a listing changes in the known set of one parent.

    - `appeared`: listed, never known before. `returned`: listed again after it was gone.
    - `gone`: known and listed before, not in this listing (each reported once).
    """

    appeared: tuple[str, ...] = ()
    returned: tuple[str, ...] = ()
    gone: tuple[str, ...] = ()


def diff(known: Mapping[str, Known], listed: Iterable[str]) -> Change:
    """Compare one parent's known set with a successful listing (pure, sorted output)."""
    found = set(listed)
    active = {n for n, k in known.items() if k.gone_at is None}
    return Change(
        appeared=tuple(sorted(found - set(known))),
        returned=tuple(sorted(n for n in found & set(known) if n not in active)),
        gone=tuple(sorted(active - found)),
    )


def gone_message(parent: str, name: str, last_seen: datetime | None, now: datetime) -> Message:
    """The one notification for a discovered child no longer listed by its parent."""
    seen = f" (last listed {when(last_seen)})" if last_seen is not None else ""
    body = (
        f"{name} is no longer listed by {parent} at {when(now)}{seen}; it is not watched "
        "any more. If it comes back it is watched again."
    )
    return Message(
        title=f"{name}: account no longer listed by {parent}",
        body=body,
        severity=Severity.WARNING,
        rule=GONE_RULE,
        account=name,
        reason=Reason.EVENTS,
    )
