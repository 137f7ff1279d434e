"""Who acts: the one instance that leads (DESIGN §10).

With SQLite the `flock` of DESIGN §6.1 already made `run` the only owner: `Sole` always
leads. With PostgreSQL any number of `run` instances share the state and `Elected`
holds the lease (watcher/state/lease.py): `check()` between cycles renews it or tries to
take it, and says what changed.

- Becoming the leader (`Role.ELECTED`): the store's write transactions are fenced with
  the new epoch from then on, and the daemon takes over the state (dead claims freed,
  `sending` top-ups reconciled) before its first cycle.
- Losing it (`Role.DEPOSED`: the renewal failed, the lease expired, or a write was fenced
  out): the daemon stops acting at once. The fence stays on the old epoch, so anything
  still under way writes nothing.
- A database that cannot be reached counts as not leading: a leader that cannot renew
  cannot write either (the state is in the same database).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import structlog

from watcher.state.db import Database
from watcher.state.lease import Lease, LeaseError, LeaseView

log = structlog.get_logger(__name__)

LEASE_INTERVALS = 3  # the lease's TTL, in poll intervals (DESIGN §10)


class Role(enum.Enum):
    LEADING = "leading"  # led before, still leads
    ELECTED = "elected"  # leads from now on
    STANDBY = "standby"  # did not lead, does not
    DEPOSED = "deposed"  # led, no longer does


@dataclass(frozen=True)
class Standing:
    """What `check()` found, and the one-line reason for STATUS= and /healthz."""

    role: Role
    detail: str

    @property
    def leads(self) -> bool:
        return self.role in (Role.LEADING, Role.ELECTED)


class Leadership(Protocol):
    leading: bool

    def check(self, ttl: timedelta) -> Standing: ...

    def deposed(self, why: str) -> Standing: ...

    def close(self) -> None: ...


class Sole:
    """SQLite: the state lock made this process the owner; it always leads."""

    leading = True

    def check(self, ttl: timedelta) -> Standing:
        return Standing(Role.LEADING, "leading")

    def deposed(self, why: str) -> Standing:  # pragma: no cover - no fence on SQLite
        return Standing(Role.LEADING, "leading")

    def close(self) -> None:
        pass


class Elected:
    """PostgreSQL: the lease decides. In: the lease, the store whose writes it fences."""

    def __init__(self, lease: Lease, store: Database) -> None:
        self.lease = lease
        self.store = store
        self.leading = False
        self._following: str | None = None  # the holder last logged as leading elsewhere

    def check(self, ttl: timedelta) -> Standing:
        """Renew or try to take the lease for `ttl` (three poll intervals)."""
        self.lease.ttl = ttl
        try:
            view = self._acquire()
        except LeaseError as exc:
            if self.leading:
                return self.deposed(str(exc))
            log.warning("leader.unreachable", error=str(exc))
            return Standing(Role.STANDBY, "standby: the lease cannot be read")
        if view.ours and self.leading:
            return Standing(Role.LEADING, f"leading (epoch {view.epoch})")
        if view.ours:
            self.leading = True
            self.store.fence = self.lease.fence
            log.info("leader.elected", holder=self.lease.holder, epoch=view.epoch)
            return Standing(Role.ELECTED, f"leading (epoch {view.epoch})")
        if self.leading:
            return self.deposed(f"the lease is held by {view.holder}")
        holder = view.holder or "nobody"
        if holder != self._following:
            self._following = holder
            log.info("leader.standby", holder=self.lease.holder, leader=holder)
        return Standing(
            Role.STANDBY, f"standby: {holder} leads (lease expires in {view.expires_in:.0f}s)"
        )

    def _acquire(self) -> LeaseView:
        """`lease.acquire()`, once more on a new connection when the first try fails (a
        connection the network or the server dropped need not cost the lead)."""
        try:
            return self.lease.acquire()
        except LeaseError as exc:
            log.warning("leader.lease_retry", error=str(exc))
            return self.lease.acquire()

    def deposed(self, why: str) -> Standing:
        """The lease is lost (`why`): stop acting. The fence keeps the old epoch."""
        self.leading = False
        log.warning("leader.deposed", holder=self.lease.holder, why=why)
        return Standing(Role.DEPOSED, "standby: the lease was lost")

    def close(self) -> None:
        """A clean stop: hand the lease over at once."""
        if self.leading:
            try:
                self.lease.release()
            except LeaseError as exc:
                log.warning("leader.release_failed", error=str(exc))
            self.leading = False
        self.lease.close()
