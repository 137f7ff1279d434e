"""The pure parts of discovery (DESIGN §10): child names, the known-set diff, globs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from watcher.core.accountmatch import is_glob, may_select_children, selects
from watcher.core.discovery import GONE_RULE, Known, child_name, diff, gone_message, slug
from watcher.core.discovery import telnyx_label as label
from watcher.core.model import Severity

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NAME = r"[a-z0-9_-]+"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice", "alice"),
        ("alice.smith@example.com", "alice_dot_smith_at_example_dot_com"),
        ("ops-team@my-co.io", "ops-team_at_my-co_dot_io"),
        ("a_b@x.io", "a_u_b_at_x_dot_io"),
        ("ops+telnyx@x.io", "ops_x2b_telnyx_at_x_dot_io"),
        ("Bbe6222F", "_x42_be6222_x46_"),  # a Vonage key as given: capitals escaped
        ("jörg@x.de", "j_xc3__xb6_rg_at_x_dot_de"),
        ("82a0b5b0-4485-40f0-b6c2-b5716b640bbd", "82a0b5b0-4485-40f0-b6c2-b5716b640bbd"),
    ],
)
def test_slug_keeps_names_readable(text: str, expected: str) -> None:
    assert slug(text) == expected


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("a.b", "a_dot_b"),  # a literal code in the text is itself escaped
        ("a@b", "a_at_b"),
        ("a_b", "a_u_b"),
        ("a.@b", "a@.b"),
        ("a+b", "a_x2b_b"),
        ("A", "a"),
    ],
)
def test_slug_never_gives_two_texts_one_name(one: str, other: str) -> None:
    assert slug(one) != slug(other)


def test_child_names_are_account_names_under_their_parent() -> None:
    import re

    name = child_name("reseller", label("Alice.Smith@Example.com", "id-1"))
    assert name == "reseller/alice_dot_smith_at_example_dot_com"
    parent, _, child = name.partition("/")
    assert re.fullmatch(NAME, parent) and re.fullmatch(NAME, child)


@pytest.mark.parametrize(
    ("email", "account_id", "expected"),
    [
        ("Alice@Example.com", "id-1", "alice@example.com"),  # e-mail: without case
        ("", "82a0b5b0-4485", "82a0b5b0-4485"),  # no e-mail: the id
        (None, "82a0b5b0-4485", "82a0b5b0-4485"),
        ("  ", "id-2", "id-2"),
    ],
)
def test_telnyx_children_are_named_by_email_else_id(
    email: str | None, account_id: str, expected: str
) -> None:
    assert label(email, account_id) == expected


def _known(*names: str, gone: tuple[str, ...] = ()) -> dict[str, Known]:
    return {n: Known(n, "p", T0 if n in gone else None) for n in names}


@pytest.mark.parametrize(
    ("known", "listed", "appeared", "returned", "gone"),
    [
        ({}, ["p/a", "p/b"], ("p/a", "p/b"), (), ()),  # the first listing
        (_known("p/a", "p/b"), ["p/a", "p/b"], (), (), ()),  # steady
        (_known("p/a", "p/b"), ["p/a"], (), (), ("p/b",)),  # one went away
        (_known("p/a", "p/b", gone=("p/b",)), ["p/a"], (), (), ()),  # gone: not again
        (_known("p/a", "p/b", gone=("p/b",)), ["p/a", "p/b"], (), ("p/b",), ()),  # back
        (_known("p/a"), [], (), (), ("p/a",)),  # an empty listing
        (_known("p/a"), ["p/c"], ("p/c",), (), ("p/a",)),
    ],
)
def test_diff_of_the_known_set_and_a_listing(
    known: dict[str, Known],
    listed: list[str],
    appeared: tuple[str, ...],
    returned: tuple[str, ...],
    gone: tuple[str, ...],
) -> None:
    change = diff(known, listed)
    assert (change.appeared, change.returned, change.gone) == (appeared, returned, gone)


@pytest.mark.parametrize(
    ("patterns", "account", "expected"),
    [
        (None, "anything", True),
        (["main"], "main", True),
        (["main"], "main/alice", False),
        (["main/*"], "main/alice", True),
        (["main/*"], "main", False),
        (["main/*"], "other/alice", False),
        (["*"], "main/alice", True),  # `*` crosses `/` as in fnmatch
        (["main/a*"], "main/alice", True),
        (["main/a?ice"], "main/alice", True),
        (["main/[ab]*"], "main/bob", True),
        (["Main/*"], "main/alice", False),  # case-sensitive
        (["eu", "main/*"], "eu", True),
    ],
)
def test_accounts_selects_names_and_globs(
    patterns: list[str] | None, account: str, expected: bool
) -> None:
    assert selects(patterns, account) is expected


@pytest.mark.parametrize(
    ("pattern", "parent", "expected"),
    [
        ("main/*", "main", True),
        ("main/alice", "main", True),  # a name under the parent: may be discovered
        ("main/", "main", False),
        ("ma*", "main", True),
        ("*/alice", "main", True),
        ("other/*", "main", False),
        ("mainly/*", "main", False),
        ("main", "main", False),  # the parent itself is not a child
    ],
)
def test_what_check_accepts_as_discovered_accounts(
    pattern: str, parent: str, expected: bool
) -> None:
    assert may_select_children(pattern, parent) is expected


@pytest.mark.parametrize(
    ("pattern", "expected"), [("a", False), ("a*", True), ("a?", True), ("[a]", True)]
)
def test_is_glob(pattern: str, expected: bool) -> None:
    assert is_glob(pattern) is expected


def test_gone_message_is_one_warning_for_the_child() -> None:
    message = gone_message("main", "main/bob", T0, T0.replace(hour=11))
    assert (message.rule, message.account, message.severity) == (
        GONE_RULE,
        "main/bob",
        Severity.WARNING,
    )
    assert message.title == "main/bob: account no longer listed by main"
    assert "last listed 2026-12-01 10:00 UTC" in message.body


def test_metrics_see_one_endpoint_for_every_single_get() -> None:
    from watcher.providers.telnyx.managed import templated

    seen: list[tuple[str, int | None]] = []
    hook = templated(lambda endpoint, status: seen.append((endpoint, status)))
    assert hook is not None and templated(None) is None
    for endpoint in ("/managed_accounts/82a0b5b0", "/managed_accounts", "/balance"):
        hook(endpoint, 200)
    assert seen == [
        ("/managed_accounts/{id}", 200),
        ("/managed_accounts", 200),
        ("/balance", 200),
    ]
