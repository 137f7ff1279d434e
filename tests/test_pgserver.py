"""The throwaway PostgreSQL server the state tests use (tests/pgserver.py)."""

from __future__ import annotations

from typing import Any

import psycopg


def test_each_url_sees_only_its_own_empty_schema(pg_server: Any) -> None:
    first, second = pg_server.fresh_url(), pg_server.fresh_url()
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("CREATE TABLE only_here (a int)")
    with psycopg.connect(second, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchone()
    assert tables == (0,)


def test_the_server_listens_on_loopback_only(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('listen_addresses')").fetchone()
    assert row == ("127.0.0.1",)
