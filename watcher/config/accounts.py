"""`accounts[]` of the configuration (DESIGN sections 3 and 6): one model per provider.

`AccountConfig` is a union keyed on `provider` (`telnyx` by default, or `vonage`); every
model forbids unknown keys, so a Telnyx-only key on a Vonage account (and the reverse) is
an error at its place. Secrets are held as references (`SecretRef`), never as values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from watcher.config.secrets import SecretRef, parse_ref
from watcher.core.durations import Duration

__all__ = [
    "LITERAL_KEY_MESSAGE",
    "PROVIDERS",
    "AccountConfig",
    "TelnyxAccountConfig",
    "TopupConfig",
    "VonageAccountConfig",
    "VonageTopupConfig",
    "discovering",
    "foreign_key_hint",
]

DEFAULT_BASE_URL = "https://api.telnyx.com/v2"
DEFAULT_REST_URL = "https://rest.nexmo.com"
DEFAULT_API_URL = "https://api.nexmo.com"
PROVIDERS = ("telnyx", "vonage")


def literal_secret_message(what: str, key: str, env: str, credential: str) -> str:
    """The error for a literal where a secret reference belongs; it never echoes the value."""
    return (
        f"a literal {what} is not allowed; store it in an environment variable or a systemd "
        f"credential and write e.g. {key}: env:{env} or {key}: credential:{credential}"
    )


LITERAL_KEY_MESSAGE = literal_secret_message(
    "API key", "api_key", "TELNYX_API_KEY", "telnyx_api_key"
)
LITERAL_SECRET_MESSAGE = literal_secret_message(
    "API secret", "api_secret", "VONAGE_API_SECRET", "vonage_api_secret"
)
LITERAL_TRX_MESSAGE = literal_secret_message(
    "transaction id (trx)", "trx", "VONAGE_TRX", "vonage_trx"
)
_VONAGE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]+$")]


def strict_config() -> ConfigDict:
    """The model config of every config section: unknown keys are errors, values frozen."""
    return ConfigDict(extra="forbid", frozen=True, defer_build=True)


# --- field types -------------------------------------------------------------------


def _to_decimal(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("money", 'Input should be an amount such as "100.00"')
    if isinstance(value, int | float | str):
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            raise PydanticCustomError(
                "money", 'Input should be an amount such as "100.00"'
            ) from None
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_to_decimal),
    Field(gt=0, decimal_places=2, allow_inf_nan=False),
]
"""A positive amount of money with at most two decimals; `100`, `100.5`, `"100.00"`."""


def _exactly_two_places(value: Decimal) -> Decimal:
    if value.as_tuple().exponent != -2:
        raise PydanticCustomError(
            "money_places",
            'must be written with exactly two decimals, e.g. "100.00" (quote it: YAML '
            "reads an unquoted 100.00 as 100.0)",
        )
    return value


TopupMoney = Annotated[Money, AfterValidator(_exactly_two_places)]
"""Money for top-ups: exactly two decimals as the API wants it (`"100.00"`, not `100`)."""


def _secret_ref(value: Any, literal_message: str) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("literal_secret", literal_message)
    try:
        ref = parse_ref(value.strip())
    except ValueError as exc:
        raise PydanticCustomError("secret_ref", "{reason}", {"reason": str(exc)}) from None
    if ref is None:
        raise PydanticCustomError("literal_secret", literal_message)
    return ref


_REF_SCHEMA = WithJsonSchema({"type": "string", "pattern": "^(env|file|credential):.+$"})


def _api_key(value: Any) -> SecretRef:
    return _secret_ref(value, LITERAL_KEY_MESSAGE)


def _api_secret(value: Any) -> SecretRef:
    return _secret_ref(value, LITERAL_SECRET_MESSAGE)


def _trx(value: Any) -> SecretRef:
    return _secret_ref(value, LITERAL_TRX_MESSAGE)


_AS_TEXT = PlainSerializer(str, return_type=str)
ApiKeyRef = Annotated[SecretRef, PlainValidator(_api_key), _AS_TEXT, _REF_SCHEMA]
"""A secret reference for an API key; anything else is refused without being echoed."""
ApiSecretRef = Annotated[SecretRef, PlainValidator(_api_secret), _AS_TEXT, _REF_SCHEMA]
"""A secret reference for Vonage's API secret."""
TrxRef = Annotated[SecretRef, PlainValidator(_trx), _AS_TEXT, _REF_SCHEMA]
"""A secret reference for the transaction id of Vonage's auto-reload payment."""


def _key_or_ref(value: Any) -> str | SecretRef:
    """Vonage's API key is an identifier: a literal such as `abcd1234`, or a reference."""
    if isinstance(value, SecretRef):
        return value
    text = str(value).strip() if isinstance(value, str | int) else ""
    try:
        ref = parse_ref(text)
    except ValueError as exc:
        raise PydanticCustomError("secret_ref", "{reason}", {"reason": str(exc)}) from None
    if ref is not None:
        return ref
    if not _VONAGE_KEY.fullmatch(text):
        raise PydanticCustomError(
            "vonage_api_key",
            "must be the Vonage API key (letters and digits, e.g. abcd1234) or a secret "
            "reference (env:NAME, file:PATH, credential:NAME)",
        )
    return text


VonageKey = Annotated[
    str | SecretRef,
    PlainValidator(_key_or_ref),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string"}),
]


def _http_url(value: str, what: str) -> str:
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise PydanticCustomError(what, "must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise PydanticCustomError(what, "must not contain credentials; the API key goes in api_key")
    if parts.query or parts.fragment:
        raise PydanticCustomError(what, "must not have a query or fragment")
    return value.strip().rstrip("/")


def _known_provider(value: Any) -> Any:
    if value != "telnyx":
        raise PydanticCustomError("literal_error", "Input should be 'telnyx' or 'vonage'")
    return value


# --- top-up ------------------------------------------------------------------------


class TopupConfig(BaseModel):
    """`accounts[].topup`: paying from the stored payment method (DESIGN section 6)."""

    # Defaults are validated too: an `amount` above the default `max_per_day` is an error.
    model_config = ConfigDict(**strict_config(), validate_default=True)

    enabled: bool = False
    amount: TopupMoney = Decimal("100.00")
    max_per_day: TopupMoney = Decimal("300.00")
    max_per_month: TopupMoney | None = None  # rolling 30 days; None: no monthly cap
    min_interval: Duration = timedelta(hours=1)
    verify_within: Duration = timedelta(minutes=10)
    hold_after: Duration = timedelta(hours=24)  # fraud hold from a rule's last firing (§6.3)

    @field_validator("max_per_day", "max_per_month")
    @classmethod
    def _cap_holds_one_topup(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        amount = info.data.get("amount")
        if value is not None and isinstance(amount, Decimal) and value < amount:
            raise PydanticCustomError(
                "topup_cap",
                "{field} ({value}) must be at least the top-up amount ({amount})",
                {"field": info.field_name, "value": str(value), "amount": str(amount)},
            )
        return value

    @field_validator("min_interval", "verify_within", "hold_after")
    @classmethod
    def _positive_duration(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise PydanticCustomError("topup_duration", "must be longer than 0s")
        return value


class VonageTopupConfig(TopupConfig):
    """`accounts[].topup` of a Vonage account: `trx` names the auto-reload payment, and
    `amount` (what Vonage adds per top-up, fixed by Vonage) must be stated when enabled."""

    trx: TrxRef | None = None

    @model_validator(mode="after")
    def _enabled_needs_trx_and_amount(self) -> Self:
        if not self.enabled:
            return self
        if self.trx is None:
            raise PydanticCustomError(
                "vonage_topup",
                "trx is required when enabled: true (the auto-reload payment's transaction "
                "id, as a secret reference such as trx: credential:vonage_trx)",
            )
        if "amount" not in self.model_fields_set:
            raise PydanticCustomError(
                "vonage_topup",
                "amount is required when enabled: true: what Vonage adds per top-up (fixed "
                'by the payment that enabled auto-reload), e.g. amount: "50.00"',
            )
        return self


# --- accounts ----------------------------------------------------------------------


class _Account(BaseModel):
    model_config = strict_config()

    name: Name = "default"

    @field_validator("topup", mode="before", check_fields=False)
    @classmethod
    def _empty_topup_is_defaults(cls, value: Any) -> Any:
        return {} if value is None else value


class TelnyxAccountConfig(_Account):
    """One Telnyx entry of `accounts` (the default provider)."""

    provider: Annotated[Literal["telnyx"], BeforeValidator(_known_provider)] = "telnyx"
    api_key: ApiKeyRef = SecretRef("env", "TELNYX_API_KEY")
    base_url: str = DEFAULT_BASE_URL
    managed_accounts: bool = False  # also watch every managed account (DESIGN §10)
    topup: TopupConfig = Field(default_factory=TopupConfig)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return _http_url(value, "base_url")


class VonageAccountConfig(_Account):
    """One Vonage entry of `accounts`: `provider: vonage`."""

    provider: Literal["vonage"]
    api_key: VonageKey
    api_secret: ApiSecretRef
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "EUR"
    rest_url: str = DEFAULT_REST_URL
    api_url: str = DEFAULT_API_URL
    subaccounts: bool = False
    topup: VonageTopupConfig = Field(default_factory=VonageTopupConfig)

    @field_validator("rest_url", "api_url")
    @classmethod
    def _urls(cls, value: str, info: ValidationInfo) -> str:
        return _http_url(value, str(info.field_name))


def _provider_of(value: Any) -> str:
    """The union member for an entry: `vonage` when it says so, else `telnyx` (whose
    `provider` field then reports any other value at its place)."""
    provider = value.get("provider") if isinstance(value, dict) else getattr(value, "provider", "")
    return "vonage" if provider == "vonage" else "telnyx"


AccountConfig = Annotated[
    Annotated[TelnyxAccountConfig, Tag("telnyx")] | Annotated[VonageAccountConfig, Tag("vonage")],
    Discriminator(_provider_of),
]
"""One entry of `accounts`: a `TelnyxAccountConfig` or a `VonageAccountConfig`."""

_MODELS: dict[str, type[_Account]] = {"telnyx": TelnyxAccountConfig, "vonage": VonageAccountConfig}
_TOPUP_MODELS: dict[str, type[TopupConfig]] = {"telnyx": TopupConfig, "vonage": VonageTopupConfig}


def untagged(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """An error's loc without the union tag pydantic puts after `accounts[i]`."""
    if len(loc) > 2 and loc[0] == "accounts" and loc[2] in _MODELS:
        return loc[:2] + loc[3:]
    return loc


def foreign_key_hint(loc: tuple[int | str, ...]) -> str:
    """For an unknown key of an account (`loc` still tagged): which provider has it, or "".

    E.g. `('accounts', 0, 'vonage', 'base_url')` → `base_url is a telnyx key (this account
    has provider: vonage)`.
    """
    if len(loc) not in (4, 5) or loc[0] != "accounts" or loc[2] not in _MODELS:
        return ""
    provider, key = str(loc[2]), str(loc[-1])
    if len(loc) == 5 and loc[3] != "topup":
        return ""
    models = _MODELS if len(loc) == 4 else _TOPUP_MODELS
    owner = next((n for n, m in models.items() if n != provider and key in m.model_fields), "")
    if not owner:
        return ""
    shown = key if len(loc) == 4 else f"topup.{key}"
    if provider == "telnyx":
        return f"{shown} is a {owner.title()} key: add provider: {owner} to this account"
    return f"{shown} is a {owner.title()} key (this account has provider: {provider})"


def discovering(accounts: Sequence[AccountConfig]) -> set[str]:
    """Names of the accounts whose children are discovered (`managed_accounts: true`,
    `subaccounts: true`; DESIGN §10)."""
    return {
        a.name
        for a in accounts
        if getattr(a, "managed_accounts", False) or getattr(a, "subaccounts", False)
    }
