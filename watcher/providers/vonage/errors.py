"""Vonage errors: `VonageError`, the one classifier of request outcomes (`classify`) for
both error shapes (rest.nexmo.com `{"error-code", "error-code-label"}`, api.nexmo.com
RFC 7807 `{type, title, detail, instance}`), the classifier of top-up outcomes
(`classify_topup`, DESIGN §6 step 4 and §6.4) and the body parser (`parse`)."""

from __future__ import annotations

from typing import TypeVar

import httpx
import pydantic
from pydantic import BaseModel

from watcher.core.payment import TopupOutcome, TopupResult
from watcher.providers.errors import ProviderError
from watcher.providers.http import clip, exception_text, is_retryable_exception, never_sent
from watcher.providers.vonage.wire import ErrorBody, load, load_any
from watcher.providers.waits import retry_after

TOPUP_ENDPOINT = "/account/top-up"
"""The top-up path on rest.nexmo.com."""

AUTO_RELOAD_DISABLED = "not auto-reload enabled"
"""The `error-code-label` of a 401 top-up refused because auto-reload is off."""

ModelT = TypeVar("ModelT", bound=BaseModel)


class VonageError(ProviderError):
    """The one error type of the Vonage client.

    `retryable` (429, 5xx, timeouts, connection failures) and `auth` (401/403) are decided
    in one place, `classify`. `retry_after` is the server's requested wait in seconds
    (Retry-After or X-RateLimit-Reset), uncapped. `str(err)` is one sentence without
    secrets, e.g. "GET /account/get-balance failed: HTTP 503 (Service Unavailable)".
    """


def error_body(response: httpx.Response) -> ErrorBody | None:
    """The body as either error shape, or None when it is neither (or not JSON)."""
    data = load_any(response.content)
    if not isinstance(data, dict):
        return None
    try:
        body = ErrorBody.model_validate(data)
    except pydantic.ValidationError:
        return None
    if body.error_code is None and body.title is None and body.type is None:
        return None
    return body


def summary(body: ErrorBody | None) -> tuple[str | None, str]:
    """(code, "text") of an error body: the legacy `error-code` and its label, or the
    RFC 7807 title and detail; (None, "") without one."""
    if body is None:
        return None, ""
    if body.error_code is not None:
        text = " ".join(p for p in (body.error_code, body.error_code_label) if p)
        return body.error_code, clip(text)
    text = ": ".join(p for p in (body.title, body.detail) if p)
    return body.type, clip(text)


def classify(
    endpoint: str,
    response: httpx.Response | None,
    exc: Exception | None,
    *,
    method: str = "GET",
    now: float | None = None,
) -> VonageError | None:
    """Decide what one HTTP outcome means: THE place that sets `retryable` and `auth`.

    In: the endpoint label (e.g. "/account/get-balance"), and either the response or the
    exception raised while sending; `now` in epoch seconds for an X-RateLimit-Reset given
    as an instant (see `http.retry_after`). Out: None for a 2xx response, else a
    `VonageError`: 429/5xx/timeouts/connection errors are retryable (with `retry_after`);
    401/403 set `auth`; any other status is permanent. Raises nothing.
    """
    where = f"{method} {endpoint}"
    if response is None:
        retryable = is_retryable_exception(exc)
        return VonageError(exception_text(where, exc), endpoint=endpoint, retryable=retryable)
    status = response.status_code
    if 200 <= status < 300:
        return None
    code, text = summary(error_body(response))
    detail = f" ({text})" if text else ""
    if status in (401, 403):
        return VonageError(
            f"{where}: the API rejected the credentials (HTTP {status}){detail}",
            endpoint=endpoint,
            status=status,
            code=code,
            auth=True,
        )
    return VonageError(
        f"{where} failed: HTTP {status}{detail}",
        endpoint=endpoint,
        status=status,
        code=code,
        retryable=status == 429 or status >= 500,
        retry_after=retry_after(response.headers, now),
    )


def parse(
    model: type[ModelT], response: httpx.Response, endpoint: str, method: str = "GET"
) -> ModelT:
    """Validate a 2xx body; raises a permanent VonageError for bad JSON or a wrong shape."""
    where = f"{method} {endpoint}"
    status = response.status_code
    try:
        return load(model, response.content)
    except pydantic.ValidationError as exc:
        problems = exc.errors(include_input=False, include_url=False)
        shown = "; ".join(
            f"{'.'.join(str(part) for part in p['loc']) or 'body'}: {p['msg']}"
            for p in problems[:3]
        )
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        message = f"{where}: response has an unexpected shape ({clip(shown)}{more})"
    except (ValueError, RecursionError):
        message = f"{where}: response is not valid JSON"
    raise VonageError(message, endpoint=endpoint, status=status)


# --------------------------------------------------------------------------- top-up


def classify_topup(response: httpx.Response | None, exc: Exception | None) -> TopupResult:
    """Decide what one `POST /account/top-up` outcome means (never retryable).

    - 200 whose body says `"error-code": "200"` → SUCCEEDED (Vonage gives no id).
    - 200 with any other body, another 2xx, a 3xx, a 5xx, a timeout, a connection lost
      once open, an unreadable answer → UNKNOWN (the card may have been charged).
    - 401 `not auto-reload enabled` → FAILED with that reason (`title`); 401/403 with
      any other body → FAILED (credentials); any other 4xx → FAILED.
    - no connection could be opened (nothing was sent) → FAILED.
    """
    where = f"POST {TOPUP_ENDPOINT}"
    if response is None:
        if never_sent(exc):
            name = type(exc).__name__
            error = f"{where}: could not connect, nothing was sent ({name})"
            return TopupResult(TopupOutcome.FAILED, error=error)
        return TopupResult(TopupOutcome.UNKNOWN, error=exception_text(where, exc))
    status = response.status_code
    body = error_body(response)
    if status == 200:
        return _topup_200(where, body)
    code, text = summary(body)
    said = f" ({text})" if text else ""
    outcome = TopupOutcome.FAILED if 400 <= status < 500 else TopupOutcome.UNKNOWN
    if status in (401, 403) and not auto_reload_disabled_body(body):
        message = f"{where}: the API rejected the credentials (HTTP {status}){said}"
    else:
        message = f"{where} failed: HTTP {status}{said}"
    title = None if body is None else (body.error_code_label or body.title)
    detail = None if body is None else body.detail
    return TopupResult(outcome, status=status, code=code, title=title, detail=detail, error=message)


def _topup_200(where: str, body: ErrorBody | None) -> TopupResult:
    if body is not None and body.error_code == "200":
        return TopupResult(TopupOutcome.SUCCEEDED, status=200, code="200")
    code, text = summary(body)
    said = f" ({text})" if text else ""
    return TopupResult(
        TopupOutcome.UNKNOWN,
        status=200,
        code=code,
        title=None if body is None else body.error_code_label,
        error=f'{where}: HTTP 200 but the answer does not say "error-code": "200"{said}',
    )


def auto_reload_disabled_body(body: ErrorBody | None) -> bool:
    label = (body.error_code_label or "") if body is not None else ""
    return AUTO_RELOAD_DISABLED in label.lower()


def auto_reload_disabled(result: TopupResult) -> bool:
    """True for a top-up refused because auto-reload is not enabled on the account
    (fires `watcher-topup-unavailable`)."""
    return (
        result.outcome is TopupOutcome.FAILED
        and result.status == 401
        and AUTO_RELOAD_DISABLED in (result.title or "").lower()
    )
