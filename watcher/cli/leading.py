"""Who may act, for `run` and `once`: the SQLite lock or the PostgreSQL lease.

On SQLite the `flock` beside the file decides (DESIGN §6.1): `run` must hold it, `once`
takes it when free. On PostgreSQL (DESIGN §10) `run` stands by until it holds the lease
(watcher/service/leader.py), and `once` acts as the owner only when it can take the lease
for its one cycle, which it hands back at the end; otherwise it runs with top-ups off,
as beside a `run` on SQLite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta

import structlog

from watcher.cli.common import EXIT_RUNTIME, Exit
from watcher.service.leader import LEASE_INTERVALS, Elected
from watcher.state.lease import SESSION_SETTINGS, Lease, LeaseError, new_holder
from watcher.state.store import Store

log = structlog.get_logger(__name__)


def elected(store: Store, url: str) -> Elected:
    """The lease of a `run` on the PostgreSQL state at `url` (`store` opened on it)."""
    for statement in SESSION_SETTINGS:  # a paused leader's open transaction must end
        store.execute(statement)
    return Elected(Lease(url, new_holder(), timedelta(0), where=store.where), store)


@contextlib.contextmanager
def once_owner(store: Store, url: str, interval: timedelta) -> Iterator[bool]:
    """For `once` on PostgreSQL: the lease for one cycle when nobody leads. Out: whether
    this process owns the state (its writes are then fenced); the lease is released at
    the end. Exit 3 when the lease cannot be read."""
    lease = Lease(url, new_holder(), interval * LEASE_INTERVALS, where=store.where)
    try:
        view = lease.acquire()
    except LeaseError as exc:
        raise Exit(EXIT_RUNTIME, str(exc)) from None
    if view.ours:
        store.fence = lease.fence
    else:
        log.info("leader.standby", holder=lease.holder, leader=view.holder)
    try:
        yield view.ours
    finally:
        with contextlib.suppress(LeaseError):
            lease.release()
        lease.close()
