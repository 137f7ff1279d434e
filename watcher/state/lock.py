"""Who owns the state database: an exclusive `flock` on `<state_path>.lock` beside it.

The process holding the lock is the only one that may pay and the only one that turns
`sending` top-ups into `unknown` at start-up (DESIGN §6): without it, a `once` started
while `run` is mid-POST would mark `run`'s in-flight payment as unknown. `run` must hold
it; `once` takes it when it is free and otherwise runs with top-ups off.

The lock is held while the `Lock` stays open; the kernel releases it when the process
exits, however it exits (a SIGKILL included), so a stale lock file is harmless.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType


def lock_path(state_path: Path) -> Path:
    """The lock file of a state database: `state.db` → `state.db.lock`, same directory."""
    return state_path.with_name(state_path.name + ".lock")


class Lock:
    """A held state lock; `close()` (or leaving the `with` block) releases it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def close(self) -> None:
        """Release the lock (idempotent). The lock file stays; it is reused next time."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> Lock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Lock({str(self.path)!r}, held={self.held})"


def acquire(state_path: Path) -> Lock | None:
    """Take the state lock without waiting.

    In: the state database's path (its directory is created if missing, mode 0700).
    Out: the held `Lock` (keep it open for as long as the process owns the state), or
    None when another process holds it. Raises OSError when the lock file cannot be
    created or opened (permissions, read-only file system).
    """
    path = lock_path(state_path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    _write_pid(fd)
    return Lock(path, fd)


def _write_pid(fd: int) -> None:
    """The owner's pid in the file, for a human asking who holds it (advisory only)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
