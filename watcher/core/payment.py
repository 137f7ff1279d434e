"""What one payment (top-up) POST did, as the core sees it: provider-neutral values.

A provider's client classifies its answer into a `TopupResult`; the top-up executor
records its outcome in the ledger. Pure values, no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TopupOutcome(enum.StrEnum):
    """What a top-up POST did: paid, refused (no money moved), or not known."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TopupResult:
    """The outcome of one top-up POST.

    - `SUCCEEDED`: the provider confirmed the payment (Telnyx: a 2xx answer with a
      transaction id; Vonage: a 200 whose body says `"error-code": "200"`, and no
      transaction id, so `transaction_id` is None).
    - `FAILED`: the API refused it with a 4xx, or no connection could be opened (the
      request was never sent): no money moved.
    - `UNKNOWN`: timeout, connection lost, a 5xx, a redirect or an unreadable answer:
      the payment may or may not have happened.
    `error` is one sentence without secrets; `code`/`title`/`detail` are the API's error.
    """

    outcome: TopupOutcome
    transaction_id: str | None = None
    status: int | None = None
    code: str | None = None
    title: str | None = None
    detail: str | None = None
    error: str = ""

    def masked(self, secret: str) -> TopupResult:
        """A copy whose texts have every occurrence of `secret` replaced by asterisks."""

        def clean(text: str | None) -> str | None:
            return text.replace(secret, "**********") if text and secret else text

        return TopupResult(
            self.outcome,
            transaction_id=self.transaction_id,
            status=self.status,
            code=self.code,
            title=clean(self.title),
            detail=clean(self.detail),
            error=clean(self.error) or "",
        )
