"""Discovered accounts in the cycle (DESIGN §10): when to list, what to watch, what went.

Before the collect step, every parent account whose provider discovers (`managed_accounts:
true`, `subaccounts: true`) is listed when due: when this process has not listed it yet
(a Telnyx child's key is held in memory only, so a new process lists once), else every
`poll.slow_interval` since the last listing, whose time is the parent's `discovery`
cursor in the state (so `run` and `once` alike list only when due). The children are
watched as accounts named `<parent>/<slug>` until the next listing; a listing that fails
keeps the children of the last one (a process that never listed has only the known set:
its children are `Unlisted`, their sources failed, their alerts kept, not resolved), a
warning in the log, and is tried again next cycle
(an account without the feature, `DiscoveryUnavailable`, is one warning and not asked
again until a restart or reload);
the listing is the parent's `discovery` source (`annotate`), so its failure is in the
source health and `watcher-source-down` follows as for any source.

A child that an earlier listing showed and this one does not is reported once: one
`watcher-account-gone` message through the default route and a `discovery.gone` log
line; the known set (watcher/state/discovered.py) marks it gone in the cycle's commit,
so neither the next cycle nor a restart reports it again. Discovered children are never
topped up (they have no `topup` config).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from watcher.core.decide import Policy, Routed, route
from watcher.core.discovery import child_name, diff, gone_message
from watcher.core.model import SourceName
from watcher.providers.base import Collected, Provider, SourceFailure
from watcher.providers.discovery import Child, Discovering, DiscoveryUnavailable, Unlisted
from watcher.providers.errors import ProviderError
from watcher.service.wiring import Wiring
from watcher.state.discovered import Discovered, Listed
from watcher.state.store import Store

log = structlog.get_logger(__name__)

SOURCE = SourceName.DISCOVERY
CURSOR = str(SOURCE)
"""The cursor (per parent account) holding when its children were last listed."""


@dataclass(frozen=True, slots=True)
class _Write:
    parent: str
    listed: tuple[Listed, ...]
    gone: tuple[str, ...]


class Discovery:
    """The discovered children across cycles (their providers, in memory) and what a
    cycle's listings write into the known set.

    In: the open store. `extend` is called at the start of a cycle, `commit` inside its
    commit transaction, `aclose` at the end.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.table = Discovered(store)
        self.requests = 0  # the last `extend`'s requests (the parents' listings)
        self._wiring: Wiring | None = None
        self._children: dict[str, dict[str, Provider]] = {}
        self._writes: list[_Write] = []
        self._results: dict[str, SourceFailure | None] = {}  # this cycle's listings
        self._unavailable: set[str] = set()  # parents that cannot list (until a reload)
        self._missing: dict[str, dict[str, Child]] = {}  # listed, but without a provider
        self._unlisted: dict[str, dict[str, Provider]] = {}  # to watch, but unreadable
        self._parents: dict[str, Provider] = {}  # of `_wiring`: who lists children

    def children(self) -> dict[str, Provider]:
        """Every discovered child watched now, by name."""
        return {n: p for kids in self._children.values() for n, p in kids.items()}

    async def extend(
        self, wiring: Wiring, now: datetime, deadline: float | None
    ) -> tuple[Wiring, list[Routed]]:
        """List the parents that are due; out: `wiring` with the children among its
        providers, and the routed messages for children that went away."""
        if wiring is not self._wiring:  # a reload: children are listed anew
            await self.aclose()
            self._wiring, self._unavailable, self._missing = wiring, set(), {}
            self._unlisted = {}
            self._parents = _parents(wiring.providers)
        parents = self._parents
        self._results = {}
        if not parents:  # nothing discovers (the usual config): nothing to list or add
            self.requests = 0
            return wiring, []
        before = sum(p.requests_sent for p in parents.values())
        slow = wiring.runtime.loaded.settings.poll.slow_interval
        found = await asyncio.gather(
            *(self._one(n, p, now, slow, deadline) for n, p in parents.items())
        )  # the parents concurrently (each child's single GET waits for its host's bound)
        routed = [self._gone(n, g, now, wiring.policy) for n, gone in found for g in gone]
        self.requests = sum(p.requests_sent for p in parents.values()) - before
        providers: dict[str, Provider] = {}
        for name, provider in wiring.providers.items():  # each parent, then its children
            providers[name] = provider
            kids = {**self._unlisted.get(name, {}), **self._children.get(name, {})}
            providers |= {n: kids[n] for n in sorted(kids) if n not in providers}
        return replace(wiring, providers=providers), routed

    async def _one(
        self,
        parent: str,
        provider: Provider,
        now: datetime,
        slow: timedelta,
        deadline: float | None,
    ) -> tuple[str, tuple[str, ...]]:
        """List one parent when due (`slow`: `poll.slow_interval`), else read again what
        it could not read; out: the parent and its children gone since its last listing."""
        if not isinstance(provider, Discovering):
            return parent, ()
        if self._due(parent, now, slow):
            return parent, await self._refresh(parent, provider, now, deadline)
        if self._missing.get(parent):
            await self._retry(parent, provider, deadline)
        return parent, ()

    def _due(self, parent: str, now: datetime, slow: timedelta) -> bool:
        if parent in self._unavailable:
            return False
        if parent not in self._children:
            return True
        last = self.store.get_cursor(parent, CURSOR)
        return last is None or now - last >= slow

    async def _refresh(
        self, parent: str, provider: Discovering, now: datetime, deadline: float | None
    ) -> tuple[str, ...]:
        """List `parent`'s children; out: the names of those gone since the last listing."""
        try:
            found = await provider.discover(now, deadline=deadline)
        except DiscoveryUnavailable as exc:
            log.warning("discovery.unavailable", account=parent, error=str(exc))
            self._unavailable.add(parent)
            return ()
        except ProviderError as exc:
            log.warning("discovery.failed", account=parent, error=str(exc))
            self._results[parent] = SourceFailure.of(exc)
            self._unlisted[parent] = self._stand_ins(parent, provider, str(exc))
            return ()
        named = {child_name(parent, c.label): c for c in found}
        await self._replace(parent, named)
        self._note_missing(parent, provider.kind, named)
        change = diff(self.table.known(parent), named)
        listed = tuple(Listed(n, c.shared, c.suspended) for n, c in named.items())
        self._writes.append(_Write(parent, listed, change.gone))
        log.info(
            "discovery.listed",
            account=parent,
            children=len(named),
            appeared=list(change.appeared),
            returned=list(change.returned),
            gone=list(change.gone),
            shared=sorted(n for n, c in named.items() if c.shared),
            suspended=sorted(n for n, c in named.items() if c.suspended),
        )
        return change.gone

    def _stand_ins(self, parent: str, provider: Discovering, error: str) -> dict[str, Provider]:
        """For a parent never listed by this process: its known children as `Unlisted`
        (their alerts are kept, not resolved, while they cannot be read)."""
        if parent in self._children:  # listed before: the last listing's stand-ins stay
            return self._unlisted.get(parent, {})
        reason = f"not read: the listing of {parent} failed ({error})"
        return {
            row.name: Unlisted(row.name, provider.kind, reason, shared=row.shared)
            for row in self.table.rows()
            if row.parent == parent and row.gone_at is None
        }

    async def _replace(self, parent: str, named: Mapping[str, Child]) -> None:
        """Swap in the children's new providers (a child not read this time keeps its
        old one); close the providers that are not kept."""
        old = self._children.get(parent, {})
        kids: dict[str, Provider] = {}
        for name, child in named.items():
            provider = child.provider or old.get(name)
            if provider is not None:
                kids[name] = provider
        for name, provider in old.items():
            if kids.get(name) is not provider:
                await provider.aclose()
        self._children[parent] = dict(sorted(kids.items()))  # by name

    async def _retry(self, parent: str, provider: Discovering, deadline: float | None) -> None:
        """Read again the children the last listing could not read (not the listing)."""
        missing = self._missing.get(parent, {})
        for name, child in list(missing.items()):
            try:
                again = await provider.reread(child, deadline=deadline)
            except ProviderError as exc:
                missing[name] = replace(child, problem=str(exc))
                continue
            if again.provider is not None:
                self._children.setdefault(parent, {})[name] = again.provider
                self._children[parent] = dict(sorted(self._children[parent].items()))
                missing[name] = again
        self._note_missing(parent, provider.kind, missing)

    def _note_missing(self, parent: str, kind: str, named: Mapping[str, Child]) -> None:
        """The children still without a provider: `Unlisted` stand-ins this cycle (their
        alerts kept), and their problem is the parent's `discovery` failure (none: the
        source succeeded)."""
        watched = self._children.get(parent, {})
        missing = {n: c for n, c in named.items() if n not in watched}
        self._missing[parent] = missing
        self._unlisted[parent] = {
            n: Unlisted(n, kind, f"not read: {c.problem or 'no key'}", shared=c.shared)
            for n, c in missing.items()
        }
        if not missing:
            self._results[parent] = None
            return
        first = next(iter(missing.values())).problem or "no provider"
        self._results[parent] = SourceFailure(
            f"{len(missing)} listed account(s) could not be read, e.g. {first}"
        )

    def annotate(self, collected: Collected) -> Collected:
        """A parent's `Collected` with this cycle's listing as its `discovery` source
        (succeeded or failed: source health, `watcher-source-down`)."""
        if collected.account not in self._results:
            return collected
        failure = self._results[collected.account]
        if failure is None:
            return replace(collected, succeeded=collected.succeeded | {SOURCE})
        return replace(collected, failures={**collected.failures, SOURCE: failure})

    def _gone(self, parent: str, name: str, now: datetime, policy: Policy) -> Routed:
        last = self.table.last_seen(name)
        log.warning("discovery.gone", account=name, parent=parent)
        return route(gone_message(parent, name, last, now), (), policy, now)

    def commit(self, now: datetime) -> None:
        """Write the cycle's listings into the known set and the parents' `discovery`
        cursors (call inside the cycle's commit transaction)."""
        with self.store.transaction():
            for write in self._writes:
                self.table.listed(write.parent, write.listed, now)
                self.table.gone(write.gone, now)
                self.store.set_cursor(write.parent, CURSOR, now)
        self._writes = []

    async def aclose(self) -> None:
        """Close every child's connections and forget the children."""
        for provider in self.children().values():
            await provider.aclose()
        self._children = {}


def _parents(providers: Mapping[str, Provider]) -> dict[str, Provider]:
    """The configured accounts whose children are to be watched."""
    return {
        name: provider
        for name, provider in providers.items()
        if isinstance(provider, Discovering) and provider.discovers
    }
