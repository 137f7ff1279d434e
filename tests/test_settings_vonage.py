"""Vonage accounts in the configuration (DESIGN sections 3 and 6.4): keys, defaults, errors
at their place, secret references and resolution, environment overrides."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path

import pytest

from watcher.config.accounts import LITERAL_SECRET_MESSAGE, LITERAL_TRX_MESSAGE
from watcher.config.secrets import SecretError, SecretRef
from watcher.config.settings import (
    LITERAL_KEY_MESSAGE,
    TelnyxAccountConfig,
    VonageAccountConfig,
    check_secrets,
    load_settings,
    resolve_secrets,
)
from watcher.config.yamlfile import ConfigError
from watcher.service.logs import scrub

SECRET = "VonageSecret0123456789"
TRX = "TRX-0123456789abcdef"
VONAGE = "accounts:\n  - name: eu\n    provider: vonage\n    api_key: abcd1234\n"
WITH_SECRET = VONAGE + "    api_secret: env:VONAGE_API_SECRET\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def vonage(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> VonageAccountConfig:
    loaded = load_settings(write(tmp_path, text), environ=environ or {})
    (account,) = loaded.settings.accounts
    assert isinstance(account, VonageAccountConfig)
    return account


def errors_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ or {})
    return [e.removeprefix(f"{path}:") for e in caught.value.errors]


def test_defaults_of_a_vonage_account(tmp_path: Path) -> None:
    account = vonage(tmp_path, WITH_SECRET)
    assert account.provider == "vonage"
    assert account.api_key == "abcd1234"  # an identifier: a literal is fine
    assert account.api_secret == SecretRef("env", "VONAGE_API_SECRET")
    assert account.currency == "EUR"
    assert account.rest_url == "https://rest.nexmo.com"
    assert account.api_url == "https://api.nexmo.com"
    assert account.subaccounts is False
    assert account.topup.enabled is False
    assert account.topup.trx is None


def test_every_vonage_key(tmp_path: Path) -> None:
    text = (
        "accounts:\n  - name: eu\n    provider: vonage\n    api_key: credential:vonage_key\n"
        "    api_secret: credential:vonage_secret\n    currency: USD\n"
        "    rest_url: http://127.0.0.1:4011/\n    api_url: http://127.0.0.1:4012\n"
        "    subaccounts: true\n"
        '    topup: {enabled: true, trx: credential:vonage_trx, amount: "50.00",\n'
        '            max_per_day: "150.00", min_interval: 2h}\n'
    )
    account = vonage(tmp_path, text)
    assert account.api_key == SecretRef("credential", "vonage_key")
    assert account.api_secret == SecretRef("credential", "vonage_secret")
    assert (account.currency, account.subaccounts) == ("USD", True)
    assert (account.rest_url, account.api_url) == ("http://127.0.0.1:4011", "http://127.0.0.1:4012")
    assert account.topup.trx == SecretRef("credential", "vonage_trx")
    assert (account.topup.amount, account.topup.max_per_day) == (
        Decimal("50.00"),
        Decimal("150.00"),
    )


def test_a_telnyx_account_next_to_a_vonage_one(tmp_path: Path) -> None:
    loaded = load_settings(write(tmp_path, WITH_SECRET + "  - name: us\n"), environ={})
    eu, us = loaded.settings.accounts
    assert isinstance(eu, VonageAccountConfig)
    assert isinstance(us, TelnyxAccountConfig)
    assert us.provider == "telnyx"


KEY_HINT = "Extra inputs are not permitted; "


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            VONAGE + "    api_secret: NotAReference99\n",
            [f"5:17: accounts[0].api_secret: {LITERAL_SECRET_MESSAGE}"],
            id="literal-secret",
        ),
        pytest.param(VONAGE, ["2:5: accounts[0].api_secret: Field required"], id="no-secret"),
        pytest.param(
            "accounts:\n  - provider: vonage\n    api_secret: env:S\n",
            ["2:5: accounts[0].api_key: Field required"],
            id="no-key",
        ),
        pytest.param(
            VONAGE.replace("abcd1234", "'abc d'") + "    api_secret: env:S\n",
            ["4:14: accounts[0].api_key: must be the Vonage API key (letters and digits"],
            id="bad-key",
        ),
        pytest.param(
            VONAGE.replace("abcd1234", "env:bad name") + "    api_secret: env:S\n",
            ["4:14: accounts[0].api_key: an env: reference needs a variable name"],
            id="bad-key-ref",
        ),
        pytest.param(
            WITH_SECRET + "    currency: eur\n",
            ["6:15: accounts[0].currency: String should match pattern '^[A-Z]{3}$'"],
            id="currency",
        ),
        pytest.param(
            WITH_SECRET + "    rest_url: ftp://x\n",
            ["6:15: accounts[0].rest_url: must be an http:// or https:// URL"],
            id="rest-url",
        ),
        pytest.param(
            WITH_SECRET + "    api_url: https://k:s@api.nexmo.com\n",
            ["6:14: accounts[0].api_url: must not contain credentials"],
            id="api-url",
        ),
        pytest.param(
            WITH_SECRET + "    base_url: https://api.telnyx.com/v2\n",
            [
                f"6:5: accounts[0].base_url: {KEY_HINT}base_url is a Telnyx key (this account "
                "has provider: vonage)"
            ],
            id="telnyx-key-on-vonage",
        ),
        pytest.param(
            WITH_SECRET + "    managed_accounts: true\n",
            ["6:5: accounts[0].managed_accounts: Extra inputs are not permitted"],
            id="managed-accounts-on-vonage",
        ),
        pytest.param(
            "accounts:\n  - name: us\n    api_secret: env:S\n    subaccounts: true\n",
            [
                f"3:5: accounts[0].api_secret: {KEY_HINT}api_secret is a Vonage key: add "
                "provider: vonage to this account",
                f"4:5: accounts[0].subaccounts: {KEY_HINT}subaccounts is a Vonage key: add "
                "provider: vonage to this account",
            ],
            id="vonage-keys-on-telnyx",
        ),
        pytest.param(
            "accounts:\n  - name: us\n    topup: {trx: env:T}\n",
            [
                f"3:13: accounts[0].topup.trx: {KEY_HINT}topup.trx is a Vonage key: add "
                "provider: vonage to this account"
            ],
            id="trx-on-telnyx",
        ),
        pytest.param(
            WITH_SECRET + '    topup: {enabled: true, amount: "50.00"}\n',
            ["6:12: accounts[0].topup: trx is required when enabled: true"],
            id="trx-required",
        ),
        pytest.param(
            WITH_SECRET + "    topup: {enabled: true, trx: env:T}\n",
            ["6:12: accounts[0].topup: amount is required when enabled: true"],
            id="amount-required",
        ),
        pytest.param(
            WITH_SECRET + '    topup: {enabled: true, trx: T0123456789, amount: "50.00"}\n',
            [f"6:33: accounts[0].topup.trx: {LITERAL_TRX_MESSAGE}"],
            id="literal-trx",
        ),
        pytest.param(
            WITH_SECRET + "    topup: {amount: 50}\n",
            ["6:21: accounts[0].topup.amount: must be written with exactly two decimals"],
            id="amount-places",
        ),
        pytest.param(
            "accounts:\n  - provider: twilio\n",
            ["2:15: accounts[0].provider: Input should be 'telnyx' or 'vonage'"],
            id="unknown-provider",
        ),
        pytest.param(
            "accounts:\n  - api_key: KEY0123456789\n",
            [f"2:14: accounts[0].api_key: {LITERAL_KEY_MESSAGE}"],
            id="telnyx-literal-key-as-before",
        ),
    ],
)
def test_vonage_errors_at_their_place(tmp_path: Path, text: str, expected: list[str]) -> None:
    errors = errors_of(tmp_path, text)
    assert len(errors) == len(expected), errors
    for error, start in zip(errors, expected, strict=True):
        assert error.startswith(start), error


def test_a_literal_secret_or_trx_is_never_echoed(tmp_path: Path) -> None:
    text = VONAGE + f"    api_secret: {SECRET}\n    topup: {{enabled: true, trx: {TRX}}}\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert SECRET not in str(caught.value) and TRX not in str(caught.value)
    assert caught.value.__cause__ is None


def test_secret_and_trx_are_resolved(tmp_path: Path) -> None:
    text = WITH_SECRET + '    topup: {enabled: true, trx: file:trx, amount: "50.00"}\n'
    (tmp_path / "trx").write_text(TRX + "\n")
    loaded = load_settings(write(tmp_path, text), environ={})
    environ = {"VONAGE_API_SECRET": SECRET}
    secrets = resolve_secrets(loaded.settings, environ=environ, config_dir=tmp_path)
    assert secrets.api_keys["eu"].get_secret_value() == "abcd1234"
    assert secrets.api_secrets["eu"].get_secret_value() == SECRET
    assert secrets.topup_trx["eu"].get_secret_value() == TRX
    shown = repr(secrets) + repr(loaded.settings)
    assert SECRET not in shown and TRX not in shown


def test_resolved_vonage_secrets_are_scrubbed_from_logs(tmp_path: Path) -> None:
    loaded = load_settings(write(tmp_path, WITH_SECRET), environ={})
    resolve_secrets(loaded.settings, environ={"VONAGE_API_SECRET": SECRET}, config_dir=tmp_path)
    basic = base64.b64encode(f"abcd1234:{SECRET}".encode()).decode()
    line = scrub(f"secret={SECRET} auth=Basic {basic}")
    assert SECRET not in line and basic not in line


def test_a_disabled_topup_needs_no_trx(tmp_path: Path) -> None:
    text = WITH_SECRET + "    topup: {trx: env:VONAGE_TRX}\n"
    loaded = load_settings(write(tmp_path, text), environ={})
    secrets = resolve_secrets(
        loaded.settings, environ={"VONAGE_API_SECRET": SECRET}, config_dir=tmp_path
    )
    assert secrets.topup_trx == {}


def test_unset_references_are_errors_for_run_and_warnings_for_check(tmp_path: Path) -> None:
    text = WITH_SECRET + '    topup: {enabled: true, trx: env:VONAGE_TRX, amount: "50.00"}\n'
    loaded = load_settings(write(tmp_path, text), environ={})
    expected = [
        "account eu: secret env:VONAGE_API_SECRET: environment variable VONAGE_API_SECRET "
        "is not set",
        "account eu: secret env:VONAGE_TRX: environment variable VONAGE_TRX is not set",
    ]
    assert check_secrets(loaded.settings, environ={}, config_dir=tmp_path) == expected
    with pytest.raises(SecretError) as caught:
        resolve_secrets(loaded.settings, environ={}, config_dir=tmp_path)
    assert caught.value.errors == expected


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        (
            {"name": "eu", "provider": "vonage", "api_key": "abcd1234", "api_secret": "env:S"},
            None,
        ),
        (
            {"name": "eu", "provider": "vonage", "api_key": "abcd1234", "api_secret": "lit"},
            f"WATCHER_ACCOUNTS: accounts[0].api_secret: {LITERAL_SECRET_MESSAGE}",
        ),
        (
            {
                "name": "eu",
                "provider": "vonage",
                "api_key": "k",
                "api_secret": "env:S",
                "base_url": "http://x",
            },
            f"WATCHER_ACCOUNTS: accounts[0].base_url: {KEY_HINT}base_url is a Telnyx key",
        ),
    ],
)
def test_env_override_of_accounts(
    tmp_path: Path, account: dict[str, str], expected: str | None
) -> None:
    environ = {"WATCHER_ACCOUNTS": json.dumps([account])}
    if expected is None:
        assert vonage(tmp_path, VONAGE, environ).api_secret == SecretRef("env", "S")
        return
    (error,) = errors_of(tmp_path, "", environ)
    assert error.startswith(expected), error
