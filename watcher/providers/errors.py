"""`ProviderError`: the base of every provider's error type (`TelnyxError`, ...).

The service layer catches this, never a provider's own class. Pure: no I/O.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A request to a provider's API failed.

    `str(err)` is one sentence without secrets. `retryable`: 429, 5xx, timeouts and
    connection failures (already retried within the budget when raised). `auth`: the
    provider rejected the credentials (401/403). Subclasses set both in their own
    classifier.
    """

    retryable: bool = False
    auth: bool = False

    def __init__(self, message: str, *, retryable: bool = False, auth: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.auth = auth
