"""`state.url`: the PostgreSQL URL's reference read, and its form checked.

The URL is a secret (it carries the password): it is read from its reference
(`env:`, `file:`, `credential:`), registered with the log scrubber, and no message
here ever contains it or any part of it. Its form is checked without a driver: scheme
`postgresql://` or `postgres://`, a host, a database name. `check` reports an unset
reference as a warning (like every secret) and a malformed URL as an error at the
`url` key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

from watcher.config.secrets import resolve
from watcher.config.sections import StateConfig
from watcher.core.redact import register_secret

SCHEMES = ("postgresql", "postgres")
FORM = "postgresql://USER@HOST[:PORT]/DATABASE"


def resolve_state_url(
    state: StateConfig, *, environ: Mapping[str, str], config_dir: Path
) -> SecretStr | None:
    """The resolved `state.url` (registered with the scrubber), or None for SQLite.

    Raises: `SecretError` naming the reference when it cannot be read.
    """
    ref = state.url_ref()
    if ref is None:
        return None
    value = resolve(ref, environ=environ, base_dir=config_dir)
    url = value.get_secret_value().strip()
    register_secret(url)
    password = _password(url)
    if password:
        register_secret(password)
    return SecretStr(url)


def url_problem(url: str) -> str | None:
    """What is wrong with the form of a resolved `state.url`, or None (never echoes it)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"state.url is not a URL of the form {FORM}"
    query = parse_qs(parts.query)
    if parts.scheme not in SCHEMES or not url.startswith(f"{parts.scheme}://"):
        return f"state.url must start with postgresql:// or postgres:// ({FORM})"
    if not (parts.hostname or query.get("host")):
        return f"state.url names no host ({FORM})"
    if not (parts.path.strip("/") or query.get("dbname")):
        return f"state.url names no database ({FORM})"
    return None


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None
