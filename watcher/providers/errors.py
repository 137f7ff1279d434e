"""`ProviderError`: the base of every provider's error type (`TelnyxError`, ...).

The service layer catches this, never a provider's own class. Pure: no I/O.
"""

from __future__ import annotations

from typing import Self

_MASK = "**********"


class ProviderError(Exception):
    """A request to a provider's API failed.

    `str(err)` is one sentence without secrets. `endpoint` names the request (never a
    secret in it), `status` the HTTP status (None: no answer) and `code` the provider's
    error code. `retryable`: 429, 5xx, timeouts and connection failures (already retried
    within the budget when raised). `auth`: the provider rejected the credentials
    (401/403). `retry_after` is the server's requested wait in seconds, uncapped. Each
    provider sets them in its own classifier.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        auth: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.retryable = retryable
        self.auth = auth
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, endpoint={self.endpoint!r}, "
            f"status={self.status!r}, code={self.code!r}, retryable={self.retryable!r}, "
            f"auth={self.auth!r}, retry_after={self.retry_after!r})"
        )

    def redacted(self, *secrets: str) -> Self:
        """A copy whose message has every occurrence of each secret masked (self if none)."""
        message = self.message
        for secret in secrets:
            if secret and message:
                message = message.replace(secret, _MASK)
        if message == self.message:
            return self
        return type(self)(
            message,
            endpoint=self.endpoint,
            status=self.status,
            code=self.code,
            retryable=self.retryable,
            auth=self.auth,
            retry_after=self.retry_after,
        )
