"""The Vonage simulator's routes: shapes checked against the vendored specs, scripting."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from vonage_sim_support import (
    AUDIT,
    BALANCE,
    EVIL,
    KEY,
    SECRETS,
    SETTINGS,
    SUBS,
    T0,
    TOPUP,
    TRX,
    ZULU_TIME,
    account,
    assert_host_error,
    client,
    server,
    validate,
)

from watcher.providers.vonage.sim import VonageSimAccount

__all__ = ["account", "client", "server"]  # fixtures

# --- happy shapes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["40.12345678", "10.28", "0.00000001", "-3.50000000", "1000000", "0"]
)
def test_balance_value_is_written_exactly(
    account: VonageSimAccount, client: httpx.Client, value: str
) -> None:
    account.set_balance(Decimal(value))
    response = client.get(BALANCE)
    assert response.text == f'{{"value": {value}, "autoReload": false}}'
    validate("account", "#/components/schemas/AccountBalance", response.json())
    assert response.json(parse_float=Decimal)["value"] == Decimal(value)


def test_balance_has_no_currency_and_reports_auto_reload(
    account: VonageSimAccount, client: httpx.Client
) -> None:
    account.set_auto_reload(True)
    assert client.get(BALANCE).json().keys() == {"value", "autoReload"}
    assert client.get(BALANCE).json()["autoReload"] is True


def test_secrets_are_hal_with_id_and_created_at(
    account: VonageSimAccount, client: httpx.Client
) -> None:
    added = account.add_secret(value="Secret-Two-2", created_at=T0 + timedelta(days=1))
    body = client.get(SECRETS).json()
    validate(
        "account",
        "#/components/responses/AccountsSecretsPageResponse/content/application~1json/schema",
        body,
    )
    secrets = body["_embedded"]["secrets"]
    assert [s["created_at"] for s in secrets] == ["2026-12-01T10:00:00Z", "2026-12-02T10:00:00Z"]
    assert secrets[1]["id"] == added.id
    assert secrets[1]["_links"]["self"]["href"] == f"{SECRETS}/{added.id}"
    assert client.get(f"{SECRETS}/{added.id}").json()["id"] == added.id
    with httpx.Client(base_url=str(client.base_url), auth=(KEY, "Secret-Two-2")) as second:
        assert second.get(BALANCE).status_code == 200  # either secret authenticates


def test_at_most_two_secrets_and_never_none(account: VonageSimAccount) -> None:
    second = account.add_secret()
    with pytest.raises(ValueError, match="at most 2"):
        account.add_secret()
    account.remove_secret(second.id)
    with pytest.raises(ValueError, match="last secret"):
        account.remove_secret(account.secrets()[0].id)
    with pytest.raises(KeyError):
        account.remove_secret("no-such-id")


def test_removing_the_secret_in_use_fails_auth(
    account: VonageSimAccount, client: httpx.Client
) -> None:
    first = account.secrets()[0]
    account.add_secret(value="Other-Secret-9")
    account.remove_secret(first.id)
    assert client.get(BALANCE).status_code == 401


def test_settings_are_served(account: VonageSimAccount, client: httpx.Client) -> None:
    account.set_settings(mo_callback_url="https://hooks.example.org/mo")
    body = client.post(SETTINGS).json()
    validate("account", "#/components/schemas/AccountSettings", body)
    assert body == {
        "mo-callback-url": "https://hooks.example.org/mo",
        "dr-callback-url": "https://example.com/webhooks/delivery-receipt",
        "max-outbound-request": 30,
        "max-inbound-request": 30,
        "max-calls-per-second": 30,
    }
    with pytest.raises(KeyError):
        account.set_settings(no_such_setting=1)


def test_subaccounts_shape_totals_and_null_balance(
    account: VonageSimAccount, client: httpx.Client
) -> None:
    account.set_balance("40.12345678")
    account.add_subaccount(name="shared", api_key="sub00001")
    account.add_subaccount(
        name="own", api_key="sub00002", use_primary_account_balance=False,
        balance="1.50000001", credit_limit="-10", suspended=True,
    )  # fmt: skip
    response = client.get(SUBS)
    body = response.json()
    validate("subaccounts", "#/components/schemas/SubaccountsAllResponse", body)
    assert '"total_balance": 41.62345679' in response.text
    assert body["total_credit_limit"] == -10
    assert body["_embedded"]["primary_account"]["api_key"] == KEY
    shared, own = body["_embedded"]["subaccounts"]
    assert (shared["balance"], shared["credit_limit"]) == (None, None)
    assert shared["use_primary_account_balance"] is True
    assert (own["balance"], own["credit_limit"], own["suspended"]) == (1.50000001, -10, True)
    for sub in (shared, own):
        assert {"api_key", "name", "balance", "credit_limit", "suspended"} <= sub.keys()
        assert {"use_primary_account_balance", "created_at"} <= sub.keys()
        assert ZULU_TIME.fullmatch(sub["created_at"])
    account.update_subaccount("sub00001", suspended=True)
    assert client.get(SUBS).json()["_embedded"]["subaccounts"][0]["suspended"] is True


@pytest.mark.parametrize(
    ("disable", "path"),
    [("disable_subaccounts", SUBS), ("disable_audit", AUDIT)],
)
def test_unprovisioned_features_answer_403(
    account: VonageSimAccount, client: httpx.Client, disable: str, path: str
) -> None:
    getattr(account, disable)()
    body = assert_host_error(client.get(path), 403, rest=False)
    assert body["type"].endswith("#unprovisioned")
    getattr(account, disable)(False)
    assert client.get(path).status_code == 200


def test_other_api_key_in_path_is_404(client: httpx.Client) -> None:
    for path in ("/accounts/someone/secrets", "/accounts/someone/subaccounts"):
        assert_host_error(client.get(path), 404, rest=False)


# --- audit events -------------------------------------------------------------------------


def add_events(account: VonageSimAccount, count: int) -> list[str]:
    """`count` events a minute apart from T0, added newest first; their ids oldest first."""
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(count)]
    for i in reversed(range(count)):
        account.add_audit_event(id=ids[i], created_at=T0 + timedelta(minutes=i), visible_at=T0)
    return ids


def test_audit_event_shape(account: VonageSimAccount, client: httpx.Client) -> None:
    context = {"created": {"accountId": KEY, "name": "x"}}
    account.add_audit_event(event_type="APP_CREATE", source="CD", context=context)
    body = client.get(AUDIT).json()
    validate("audit", "#/components/schemas/AuditResp", body)
    (event,) = body["_embedded"]["events"]
    wanted = {"id", "event_type", "created_at", "user_email", "source", "source_ip"}
    assert wanted | {"source_country", "context"} <= event.keys()
    assert event["created_at"] == "2026-12-01T10:00:00"  # no time zone
    assert (event["source"], event["context"], event["event_type"]) == ("CD", context, "APP_CREATE")
    assert body["page"] == {"size": 30, "totalElements": 1, "totalPages": 1, "number": 1}


def test_audit_pages_are_numbered_from_one_oldest_first(
    account: VonageSimAccount, client: httpx.Client
) -> None:
    ids = add_events(account, 7)
    seen, pages = [], []
    for number in (1, 2, 3):
        body = client.get(AUDIT, params={"page": number, "size": 3}).json()
        pages.append((body["page"], "next" in body["_links"]))
        seen += [e["id"] for e in body["_embedded"]["events"]]
    assert seen == ids
    assert [p for p, _ in pages] == [
        {"size": 3, "totalElements": 7, "totalPages": 3, "number": n} for n in (1, 2, 3)
    ]
    assert [has_next for _, has_next in pages] == [True, True, False]
    beyond = client.get(AUDIT, params={"page": 4, "size": 3}).json()
    assert beyond["_embedded"]["events"] == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"date_from": "2026-12-01T10:02:00"}, [2, 3, 4]),  # inclusive, no zone = UTC
        ({"date_from": "2026-12-01T10:02:00Z"}, [2, 3, 4]),
        ({"date_from": "2026-12-01T11:02:00+01:00"}, [2, 3, 4]),
        ({"date_to": "2026-12-01T10:01:00"}, [0, 1]),
        ({"date_from": "2026-12-01T10:01:00", "date_to": "2026-12-01T10:03:00"}, [1, 2, 3]),
        ({"event_type": "APP_CREATE"}, []),
        ({"search_text": "000000000003"}, [3]),
    ],
)
def test_audit_filters(
    account: VonageSimAccount, client: httpx.Client, params: dict[str, str], expected: list[int]
) -> None:
    ids = add_events(account, 5)
    body = client.get(AUDIT, params=params).json()
    assert [e["id"] for e in body["_embedded"]["events"]] == [ids[i] for i in expected]


@pytest.mark.parametrize(
    "params", [{"size": "101"}, {"size": "0"}, {"page": "0"}, {"size": "x"}, {"date_from": "y"}]
)
def test_audit_bad_parameters_are_400(client: httpx.Client, params: dict[str, str]) -> None:
    assert_host_error(client.get(AUDIT, params=params), 400, rest=False)


def test_audit_size_100_is_allowed(account: VonageSimAccount, client: httpx.Client) -> None:
    add_events(account, 101)
    body = client.get(AUDIT, params={"size": 100}).json()
    assert len(body["_embedded"]["events"]) == 100 and body["page"]["totalPages"] == 2


def test_audit_events_become_visible_later(account: VonageSimAccount, client: httpx.Client) -> None:
    account.add_audit_event(created_at=T0 - timedelta(minutes=5), visible_at=T0 + timedelta(1))
    assert client.get(AUDIT).json()["_embedded"]["events"] == []
    account.advance(timedelta(days=1))
    (event,) = client.get(AUDIT).json()["_embedded"]["events"]
    assert event["created_at"] == "2026-12-01T09:55:00"
    assert client.get(f"{AUDIT}/{event['id']}").json()["id"] == event["id"]
    assert_host_error(client.get(f"{AUDIT}/nope"), 404, rest=False)


# --- top-up and settings changes ----------------------------------------------------------


def test_topup_with_auto_reload_adds_the_fixed_amount(
    account: VonageSimAccount, client: httpx.Client
) -> None:
    account.set_balance("1.23456789")
    account.set_auto_reload(True, amount=Decimal("50.00"))
    response = client.post(TOPUP, data={"trx": TRX})
    assert response.status_code == 200
    assert response.json() == {"error-code": "200", "error-code-label": "success"}
    validate(
        "account",
        "#/components/responses/TopOffResponse/content/application~1json/schema",
        response.json(),
    )
    assert account.balance() == Decimal("51.23456789")
    assert '"value": 51.23456789' in client.get(BALANCE).text
    assert account.topups == [Decimal("50.00")]
    assert account.request_count(TOPUP, method="POST") == 1


@pytest.mark.parametrize(
    ("enabled", "trx", "status", "label"),
    [
        (False, TRX, 401, "not auto-reload enabled"),
        (True, "wrong", 400, "invalid transaction reference"),
        (True, None, 400, "invalid transaction reference"),
    ],
)
def test_topup_refused(
    account: VonageSimAccount,
    client: httpx.Client,
    enabled: bool,
    trx: str | None,
    status: int,
    label: str,
) -> None:
    account.set_auto_reload(enabled)
    response = client.post(TOPUP, data={} if trx is None else {"trx": trx})
    assert response.status_code == status
    assert response.json() == {"error-code": str(status), "error-code-label": label}
    assert account.balance() == Decimal("40.12345678") and account.topups == []
    (attempt,) = account.topup_attempts
    assert (attempt.trx, attempt.succeeded, attempt.at) == (trx, False, T0)


@pytest.mark.parametrize(
    ("data", "params", "changed"),
    [
        (None, None, []),
        ({}, None, []),
        ({"moCallBackUrl": EVIL}, None, [("moCallBackUrl", EVIL)]),
        ({"drCallBackUrl": ""}, None, [("drCallBackUrl", "")]),  # an empty value unsets
        (None, {"httpForwardMethod": "POST_JSON"}, [("httpForwardMethod", "POST_JSON")]),
    ],
)
def test_settings_changes_are_recorded(
    account: VonageSimAccount,
    client: httpx.Client,
    data: dict[str, str] | None,
    params: dict[str, str] | None,
    changed: list[tuple[str, str]],
) -> None:
    before = account.settings()
    body = client.post(SETTINGS, data=data, params=params).json()
    assert [list(c.fields) for c in account.settings_changes] == ([changed] if changed else [])
    expected = dict(before)
    for name, value in changed:
        if name in ("moCallBackUrl", "drCallBackUrl"):
            expected[name[:2].lower() + "-callback-url"] = value
    assert body == expected == account.settings()
