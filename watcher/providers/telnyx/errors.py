"""Telnyx errors: `TelnyxError`, the one classifier of GET outcomes (`classify`), the
classifier of top-up outcomes (`classify_topup`) and the body parser that turns a bad
body into a permanent error (`parse`)."""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

import httpx
import pydantic
from pydantic import BaseModel

from watcher.core.payment import TopupOutcome, TopupResult
from watcher.providers.errors import ProviderError
from watcher.providers.http import clip, exception_text, is_retryable_exception, never_sent
from watcher.providers.telnyx.wire import ErrorBody, ErrorItem, TransactionBody
from watcher.providers.waits import retry_after

TOPUP_ENDPOINT = "/payment/stored_payment_transactions"
"""The top-up path relative to the `/v2` base URL (never `/v2/v2/...` as the SDKs send it)."""

_CENT = Decimal("0.01")
ModelT = TypeVar("ModelT", bound=BaseModel)


class TelnyxError(ProviderError):
    """The one error type of the client.

    `retryable` (429, 5xx, timeouts, connection failures) and `auth` (401/403) are decided
    in one place, `classify`. `retry_after` is the server's requested wait in seconds
    (Retry-After or x-ratelimit-reset), uncapped. `str(err)` is one sentence without
    secrets, e.g. "GET /balance failed: HTTP 503 (10011 Too many requests)".
    """


def classify(
    endpoint: str,
    response: httpx.Response | None,
    exc: Exception | None,
    *,
    method: str = "GET",
    now: float | None = None,
) -> TelnyxError | None:
    """Decide what one HTTP outcome means: THE place that sets `retryable` and `auth`.

    In: the endpoint path (e.g. "/balance"), and either the response or the exception
    raised while sending. Out: None for a 2xx response, else a `TelnyxError`:
    429/5xx/timeouts/connection errors are retryable (with `retry_after` from Retry-After
    or x-ratelimit-reset, given as seconds-until or as an epoch instant in seconds or
    milliseconds, measured from `now`, epoch seconds: see `http.retry_after`); 401/403 set
    `auth`; any other status is permanent. Raises nothing.
    """
    where = f"{method} {endpoint}"
    if response is None:
        return _classify_exception(where, endpoint, exc)
    status = response.status_code
    if 200 <= status < 300:
        return None
    code, text = _error_summary(response)
    if status in (401, 403):
        return TelnyxError(
            f"{where}: the API rejected the key (HTTP {status})",
            endpoint=endpoint,
            status=status,
            code=code,
            auth=True,
        )
    retryable = status == 429 or status >= 500
    detail = f" ({text})" if text else ""
    return TelnyxError(
        f"{where} failed: HTTP {status}{detail}",
        endpoint=endpoint,
        status=status,
        code=code,
        retryable=retryable,
        retry_after=retry_after(response.headers, now),
    )


def _classify_exception(where: str, endpoint: str, exc: Exception | None) -> TelnyxError:
    return TelnyxError(
        exception_text(where, exc), endpoint=endpoint, retryable=is_retryable_exception(exc)
    )


def _error_summary(response: httpx.Response) -> tuple[str | None, str]:
    """The first Telnyx error of the body as (code, "code title"), or (None, "")."""
    try:
        body = ErrorBody.model_validate_json(response.content)
    except pydantic.ValidationError:
        return None, ""
    if not body.errors:
        return None, ""
    first = body.errors[0]
    code = None if first.code is None else str(first.code)
    title = first.title or first.detail or ""
    text = " ".join(part for part in (code, title) if part)
    return code, clip(text)


def topup_amount_text(amount: Decimal) -> str:
    """The amount as the API wants it: `Decimal("100")` -> `"100.00"`.

    Raises ValueError for an amount that is not positive or has more than two decimals
    (money is never rounded silently).
    """
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"a top-up amount must be positive, not {amount}")
    if amount != amount.quantize(_CENT):
        raise ValueError(f"a top-up amount has at most two decimals, not {amount}")
    return str(amount.quantize(_CENT))


def classify_topup(response: httpx.Response | None, exc: Exception | None) -> TopupResult:
    """Decide what one top-up POST outcome means (never retryable: see `TopupResult`).

    In: the response, or the exception raised while sending. Out: a `TopupResult`.
    """
    where = f"POST {TOPUP_ENDPOINT}"
    if response is None:
        if never_sent(exc):
            return TopupResult(
                TopupOutcome.FAILED,
                error=f"{where}: could not connect, nothing was sent ({type(exc).__name__})",
            )
        error = _classify_exception(where, TOPUP_ENDPOINT, exc)
        return TopupResult(TopupOutcome.UNKNOWN, error=error.message)
    status = response.status_code
    if 200 <= status < 300:
        try:
            body = TransactionBody.model_validate_json(response.content)
        except pydantic.ValidationError:
            return TopupResult(
                TopupOutcome.UNKNOWN,
                status=status,
                error=f"{where}: HTTP {status} but the answer has no transaction id",
            )
        return TopupResult(TopupOutcome.SUCCEEDED, transaction_id=body.data.id, status=status)
    first = _first_error(response)
    code = None if first is None or first.code is None else str(first.code)
    title = None if first is None else first.title
    detail = None if first is None else first.detail
    text = " ".join(part for part in (code, title) if part)
    said = f" ({clip(text)})" if text else ""
    outcome = TopupOutcome.FAILED if 400 <= status < 500 else TopupOutcome.UNKNOWN
    return TopupResult(
        outcome,
        status=status,
        code=code,
        title=title,
        detail=detail,
        error=f"{where} failed: HTTP {status}{said}",
    )


def _first_error(response: httpx.Response) -> ErrorItem | None:
    try:
        body = ErrorBody.model_validate_json(response.content)
    except pydantic.ValidationError:
        return None
    return body.errors[0] if body.errors else None


def parse(model: type[ModelT], response: httpx.Response, endpoint: str) -> ModelT:
    """Validate a 2xx body; raises a permanent TelnyxError for bad JSON or a wrong shape."""
    try:
        return model.model_validate_json(response.content)
    except pydantic.ValidationError as exc:
        raise _shape_error(exc, endpoint, response.status_code) from None


def _shape_error(exc: pydantic.ValidationError, endpoint: str, status: int) -> TelnyxError:
    problems = exc.errors(include_input=False, include_url=False)
    where = f"GET {endpoint}"
    if any(p["type"] == "json_invalid" for p in problems):
        return TelnyxError(f"{where}: response is not valid JSON", endpoint=endpoint, status=status)
    shown = "; ".join(
        f"{'.'.join(str(part) for part in p['loc']) or 'body'}: {p['msg']}" for p in problems[:3]
    )
    more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
    return TelnyxError(
        f"{where}: response has an unexpected shape ({clip(shown)}{more})",
        endpoint=endpoint,
        status=status,
    )
