"""Contract tests: the Vonage client's requests against Prism serving each vendored spec
(`tests/data/vonage-{account,audit,subaccounts}.openapi.yaml`, byte-identical to
`shared/api`).

Prism validates every request (path, query bounds, content type, form body, the Basic
security scheme) and answers a bad one with 4xx and a request entry in `sl-violations`.
It runs WITHOUT `--errors` here: the vendored specs have known response-schema faults
(PITFALLS: audit `created_at` declared `format: date`, `context` and the 401 `oneOf`s
ambiguous) that would turn the spec's own examples into 500s. Instead each test checks
the violations itself: none about the request, and none about the response beyond those
known faults.

Prism serves a spec's paths at the root, without the base path of its `servers` URL
(`/beta/audit` for the audit spec, `/accounts` for subaccounts). `ServerPath` checks that
the client's request starts with that base path and strips it before Prism sees it; the
secrets paths carry a path-level server without a base path and need nothing. Both base
URLs of the client point at the one Prism of the spec under test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prism_support import DATA, running_prism, violations_of
from pydantic import SecretStr

from watcher.core.payment import TopupOutcome
from watcher.providers.vonage.client import VonageClient
from watcher.providers.vonage.errors import VonageError, auto_reload_disabled
from watcher.providers.vonage.wire import VonageSecret, VonageSettings

pytestmark = pytest.mark.contract

KEY = "abcd1234"
SECRET = "Contract5ecret"
SINCE = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
KNOWN_RESPONSE_FAULTS = {  # the vendored specs' own faults (PITFALLS, "Vonage")
    ("_embedded", "events", "0", "created_at"),  # a date-time without zone, declared a date
    ("_embedded", "events", "0", "context"),  # ambiguous oneOf
    (),  # the 401 oneOf of the account spec matches ambiguously
}
NOW = 1769182700.0  # just before the spec's X-RateLimit-Reset example, 1769182705723 ms


class ServerPath(httpx.AsyncBaseTransport):
    """A real transport that checks and strips the spec's server base path, records every
    request and response, and can add headers (e.g. Prefer)."""

    def __init__(self, base_path: str = "", extra: dict[str, str] | None = None) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._base = base_path
        self._extra = extra or {}
        self.paths: list[str] = []
        self.responses: list[httpx.Response] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        assert path.startswith(f"{self._base}/"), f"{path} is not under {self._base}"
        request.url = request.url.copy_with(path=path[len(self._base) :])
        request.headers.update(self._extra)
        response = await self._inner.handle_async_request(request)
        self.responses.append(response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    def problems(self) -> list[object]:
        """Request violations, and response violations beyond the known spec faults."""
        found: list[object] = []
        for response in self.responses:
            for item in violations_of(response.headers):
                location = item.get("location")
                where = tuple(location) if isinstance(location, list) else ()
                if where[:1] == ("request",) or where[2:] not in KNOWN_RESPONSE_FAULTS:
                    found.append(item)
        return found


@dataclass
class Served:
    url: str
    base_path: str

    def client(self, transport: ServerPath, **options: object) -> VonageClient:
        return VonageClient(
            api_key=KEY,
            api_secret=SecretStr(SECRET),
            rest_url=self.url,
            api_url=self.url,
            transport=transport,
            timeout=5.0,
            **options,  # type: ignore[arg-type]
        )


def _serve(name: str, base_path: str, factory: pytest.TempPathFactory) -> Iterator[Served]:
    spec: Path = DATA / f"vonage-{name}.openapi.yaml"
    with running_prism(spec, factory.mktemp("prism"), errors=False) as url:
        yield Served(url, base_path)


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve("account", "", tmp_path_factory)


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve("audit", "/beta/audit", tmp_path_factory)


@pytest.fixture(scope="module")
def subaccounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve("subaccounts", "/accounts", tmp_path_factory)


@pytest.fixture
async def on_account(account: Served) -> AsyncIterator[tuple[VonageClient, ServerPath]]:
    transport = ServerPath(account.base_path)
    async with account.client(transport) as client:
        yield client, transport
    assert transport.problems() == []
    assert all(r.status_code == 200 for r in transport.responses)


# ----------------------------------------------------------------------------- accepted


async def test_get_balance(on_account: tuple[VonageClient, ServerPath]) -> None:
    client, _ = on_account
    balance = await client.get_balance()
    assert (balance.value, balance.auto_reload) == (Decimal("10.28"), False)


async def test_read_settings_with_the_empty_form(
    on_account: tuple[VonageClient, ServerPath],
) -> None:
    client, _ = on_account
    assert await client.read_settings() == VonageSettings(
        mo_callback_url="https://example.com/webhooks/inbound-sms",
        dr_callback_url="https://example.com/webhooks/delivery-receipt",
        max_outbound_request=30,
        max_inbound_request=30,
        max_calls_per_second=30,
    )


async def test_list_secrets_on_the_path_level_server(
    on_account: tuple[VonageClient, ServerPath],
) -> None:
    client, transport = on_account
    assert await client.list_secrets() == [
        VonageSecret(
            "01234567-aaaa-bbbb-cccc-defdefdefdef", datetime(2018, 12, 3, 10, 7, 23, tzinfo=UTC)
        )
    ]
    assert transport.paths == [f"/accounts/{KEY}/secrets"]


async def test_topup_is_accepted_and_succeeds(on_account: tuple[VonageClient, ServerPath]) -> None:
    client, _ = on_account
    result = await client.create_topup(SecretStr("8ef2447e69604f642ae59363aa5f781b"))
    assert result.outcome is TopupOutcome.SUCCEEDED
    assert client.requests_sent == 1


async def test_topup_not_auto_reload_enabled(account: Served) -> None:
    transport = ServerPath(extra={"Prefer": "code=401"})
    async with account.client(transport) as client:
        result = await client.create_topup(SecretStr("8ef2447e69604f642ae59363aa5f781b"))
    assert result.outcome is TopupOutcome.FAILED and auto_reload_disabled(result)
    assert [p for p in transport.problems() if "request" in str(p)] == []


async def test_rate_limit_response_carries_the_waits(account: Served) -> None:
    transport = ServerPath(extra={"Prefer": "code=429"})
    async with account.client(transport, max_attempts=1, wall_clock=lambda: NOW) as client:
        with pytest.raises(VonageError) as caught:
            await client.get_balance()
    assert (caught.value.status, caught.value.retryable) == (429, True)
    assert caught.value.retry_after == 15.0  # Retry-After first; the reset is epoch ms


async def test_audit_events(audit: Served) -> None:
    transport = ServerPath(audit.base_path)
    async with audit.client(transport) as client:
        pages = [page async for page in client.audit_event_pages(SINCE, date_to=SINCE)]
    assert transport.problems() == []
    # the example says page 1 of 2 on every page: two requests, then stop
    assert transport.paths == ["/beta/audit/events"] * 2
    assert [(p.number, p.last) for p in pages] == [(1, False), (2, True)]
    event = pages[0].items[0]
    assert event.id == "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
    assert event.created_at == datetime(2018, 7, 4, 11, 41, 32, tzinfo=UTC)
    assert event.source == "CD"


async def test_subaccounts(subaccounts: Served) -> None:
    transport = ServerPath(subaccounts.base_path)
    async with subaccounts.client(transport) as client:
        result = await client.list_subaccounts()
    assert transport.problems() == []
    assert transport.paths == [f"/accounts/{KEY}/subaccounts"]
    assert result.primary is not None
    # the example shares the primary's balance: no balance of its own, whatever it says
    assert [(s.api_key, s.balance) for s in result.subaccounts] == [("bbe6222f", None)]


# ----------------------------------------------------------------------------- rejected

AUTH = httpx.BasicAuth(KEY, SECRET)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("method", "path", "auth", "headers", "content", "status"),
    [
        pytest.param("GET", "/account/get-balance", None, {}, None, 401, id="balance-no-auth"),
        pytest.param(
            "GET",
            "/account/get-balance",
            None,
            {"Authorization": "Bearer x"},
            None,
            401,
            id="balance-bearer",
        ),
        pytest.param("GET", f"/accounts/{KEY}/secrets", None, {}, None, 401, id="secrets-no-auth"),
        pytest.param(
            "POST",
            "/account/settings",
            AUTH,
            {"Content-Type": "application/json"},
            b"{}",
            415,
            id="settings-json",
        ),
        pytest.param(
            "POST",
            "/account/settings",
            AUTH,
            FORM,
            b"moCallBackUrl=not%20a%20url",
            422,
            id="settings-field",
        ),
        pytest.param("POST", "/account/top-up", AUTH, FORM, b"", 422, id="topup-no-trx"),
        pytest.param(
            "POST",
            "/account/top-up",
            AUTH,
            {"Content-Type": "application/json"},
            b'{"trx": "x"}',
            415,
            id="topup-json",
        ),
        pytest.param("POST", "/account/top-up", None, FORM, b"trx=x", 401, id="topup-no-auth"),
    ],
)
async def test_prism_rejects_account_requests_that_break_the_spec(
    account: Served,
    method: str,
    path: str,
    auth: httpx.BasicAuth | None,
    headers: dict[str, str],
    content: bytes | None,
    status: int,
) -> None:
    async with httpx.AsyncClient(base_url=account.url, auth=auth) as raw:
        response = await raw.request(method, path, headers=headers, content=content)
    assert response.status_code == status


@pytest.mark.parametrize(
    ("params", "auth", "status"),
    [
        pytest.param({"size": "500", "page": "1"}, AUTH, 422, id="size-above-100"),
        pytest.param({"page": "1"}, None, 401, id="no-auth"),
    ],
)
async def test_prism_rejects_audit_requests_that_break_the_spec(
    audit: Served, params: dict[str, str], auth: httpx.BasicAuth | None, status: int
) -> None:
    async with httpx.AsyncClient(base_url=audit.url, auth=auth) as raw:
        response = await raw.get("/events", params=params)
    assert response.status_code == status


async def test_prism_rejects_subaccounts_without_auth(subaccounts: Served) -> None:
    async with httpx.AsyncClient(base_url=subaccounts.url) as raw:
        response = await raw.get(f"/{KEY}/subaccounts")
    assert response.status_code == 401


async def test_a_client_without_the_audit_base_path_is_rejected(audit: Served) -> None:
    """The client must send `/beta/audit/events`: a client whose requests miss it fails."""
    transport = ServerPath("")  # strips nothing: Prism sees /beta/audit/events
    async with audit.client(transport, max_attempts=1) as client:
        with pytest.raises(VonageError, match="HTTP 404"):
            [page async for page in client.audit_event_pages(SINCE)]
