"""A throwaway PostgreSQL server for the tests: `initdb` into a temp dir, 127.0.0.1 only.

`PgServer.start()` finds Debian's binaries (on PATH, else /usr/lib/postgresql/*/bin),
makes a data directory, runs `initdb` and `pg_ctl start` (as the `postgres` user when
this process is root: both refuse to run as root, see PITFALLS), and `stop()` shuts it
down fast and removes the directory. Each test gets its own schema on it
(`fresh_url`), so one server per pytest worker serves the whole run.

No mock anywhere: the store, the lease and the failover tests talk to this server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

USER = "watcher"


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def available() -> bool:
    """Whether initdb and pg_ctl are installed (make test installs them when missing)."""
    return _binary("initdb") is not None and _binary("pg_ctl") is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One running PostgreSQL server; `url` is its base URL (database `postgres`)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="aw-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        self._running = False

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        command = list(argv)
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            log = self.dir / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr.strip()}\n{tail}"
            )

    def start(self) -> PgServer:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("PostgreSQL is not installed (make test installs it)")
        self.dir.chmod(0o755)
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", USER, "-E", "UTF8")
        options = (
            f"-k {self.dir} -c listen_addresses=127.0.0.1 -p {self.port} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )
        self._running = True
        return self

    def stop(self) -> None:
        pg_ctl = _binary("pg_ctl")
        if self._running and pg_ctl is not None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(pg_ctl, "-D", str(self.data), "-w", "-m", "immediate", "stop")
            self._running = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def fresh_url(self) -> str:
        """A URL whose connections see only a new, empty schema of their own."""
        import psycopg

        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return f"{self.url}?options={quote(f'-csearch_path={schema}')}"
