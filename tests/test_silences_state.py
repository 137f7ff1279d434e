"""The silences table on both backends (`state_target`): add, expire, end, prune."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher.state.silences import Silences
from watcher.state.store import StateTarget, open_store

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


def test_a_silence_lives_ends_once_and_is_pruned(state_target: StateTarget) -> None:
    with open_store(state_target) as store:
        silences = Silences(store)
        first = silences.add(
            "low-*", account=None, duration=2 * H, reason=" work ", created_by="ann", now=T0
        )
        second = silences.add(
            "spike", account="eu", duration=H, reason="test", created_by="bob", now=T0
        )
        assert (first.id, second.id) == (1, 2) and first.reason == "work"
        assert [s.id for s in silences.active(T0 + H / 2)] == [1, 2]
        assert silences.expire(1, T0 + H / 2).expires_at == T0 + H / 2
        assert silences.active(T0 + H / 2 + timedelta(seconds=1)) == [silences.get(2)]
        ended = silences.ended_unhandled(T0 + 2 * H)
        assert [s.id for s in ended] == [1, 2]
        silences.mark_handled(ended)
        assert silences.ended_unhandled(T0 + 3 * H) == []
        assert silences.prune(T0 + 31 * 24 * H) == 2
        assert silences.all() == []
        with pytest.raises(KeyError):
            silences.get(1)
        with pytest.raises(ValueError, match="needs a reason"):
            silences.add("x", account=None, duration=H, reason=" ", created_by="ann", now=T0)
