"""The secret registry: values that must never appear in a log line or an error text.

`register_secret` / `register_url_secrets` add a secret (with its URL-quoted and
JSON-escaped forms); `scrub` replaces every registered value in a text with `***`.
Pure Python, process-wide, guarded by a lock; watcher/service/logs.py applies `scrub`
to every rendered log line.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

MASK = "***"
MIN_SECRET_LENGTH = 6
_URL_TOKEN_LENGTH = 8
_SECRET_QUERY_KEYS = frozenset(
    {"token", "key", "apikey", "api_key", "secret", "password", "pass", "pw", "webhook"}
)

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_stale = False  # secrets were added since `_pattern` was built
_builds = 0
_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Mask `value` (and its URL-quoted and JSON-escaped forms) in every log line from now on.

    In: a secret such as an API key. Values shorter than 6 characters are ignored (masking
    them would garble ordinary words). Out: nothing.
    """
    if len(value) < MIN_SECRET_LENGTH:
        return
    variants = {value, quote(value, safe=""), quote_plus(value), _json_escaped(value)}
    variants |= {unquote(value)}
    global _stale
    with _lock:
        new = {v for v in variants if len(v) >= MIN_SECRET_LENGTH} - _secrets
        _secrets.update(new)
        _stale = _stale or bool(new)


def register_url_secrets(url: str) -> None:
    """Mask a notification URL and the credentials inside it in every log line.

    In: an apprise URL such as `slack://T000/B000/XXXX` or
    `mailtos://user:pw@host?to=a@b`. Registers the whole URL, the password of its
    user-info, every path segment (and a dot-less host part, where apprise puts tokens)
    of at least 8 characters, and values of token-like query parameters.
    """
    register_secret(url)
    for token in _url_tokens(url):
        register_secret(token)


def _url_tokens(url: str) -> Iterator[str]:
    try:
        parts = urlsplit(url)
        password = parts.password
        host = parts.netloc.rpartition("@")[2].partition(":")[0]  # as written, not lowercased
    except ValueError:
        return
    if password:
        yield unquote(password)
    if len(host) >= _URL_TOKEN_LENGTH and "." not in host and host != "localhost":
        yield host
    for segment in parts.path.split("/"):
        if len(segment) >= _URL_TOKEN_LENGTH:
            yield unquote(segment)
    for key, value in parse_qsl(parts.query):
        if key.lower() in _SECRET_QUERY_KEYS:
            yield value


def _json_escaped(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def scrub(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    pattern = _current()
    return pattern.sub(MASK, text) if pattern is not None else text


def _current() -> re.Pattern[str] | None:
    """The pattern of every registered secret, built at the first scrub after secrets
    were added: registering a reseller's thousands of keys builds it once, not once per
    key (each build is linear in the number of secrets)."""
    global _pattern, _stale, _builds
    if not _stale:
        return _pattern
    with _lock:
        if _stale:
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(v) for v in ordered))
            _stale, _builds = False, _builds + 1
        return _pattern


def pattern_builds() -> int:
    """How often the pattern was built so far (diagnostics)."""
    return _builds
