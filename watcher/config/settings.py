"""The configuration file (DESIGN section 3): models, loading, secret resolution.

`load_settings` reads one YAML file, lays `WATCHER_<SECTION>__<KEY>` environment
variables over it and validates everything at once; each problem is reported as
`file:line:col: loc: message` (or `WATCHER_...: message` when it came from the
environment). The models hold secret *references*; `resolve_secrets` reads them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources.utils import parse_env_vars

from watcher.config.secrets import SecretError, SecretRef, parse_ref, resolve
from watcher.config.yamlfile import ConfigError, YamlDoc, error_message, format_error, format_loc
from watcher.config.yamlfile import load_yaml as load_yaml
from watcher.core.durations import Duration, duration_text, parse_duration
from watcher.core.mute import MuteSpec
from watcher.core.redact import register_secret, register_url_secrets

__all__ = [
    "AccountConfig",
    "ConfigError",
    "LoadedSettings",
    "LogConfig",
    "MetricsConfig",
    "NotifyConfig",
    "PollConfig",
    "ResolvedSecrets",
    "RouteConfig",
    "SecretError",
    "Settings",
    "StateConfig",
    "TopupConfig",
    "check_secrets",
    "default_config_path",
    "fast_poll_allowed",
    "load_settings",
    "resolve_route_url",
    "resolve_secrets",
]

DEFAULT_CONFIG_PATH = Path("/etc/account-watcher/config.yaml")
DEFAULT_BASE_URL = "https://api.telnyx.com/v2"
MIN_POLL_INTERVAL = timedelta(seconds=10)
ENV_PREFIX = "WATCHER_"
ENV_DELIMITER = "__"
FAST_POLL_VARIABLE = "WATCHER_ALLOW_FAST_POLL"
LITERAL_KEY_MESSAGE = (
    "a literal API key is not allowed; store it in an environment variable or a systemd "
    "credential and write e.g. api_key: env:TELNYX_API_KEY or "
    "api_key: credential:telnyx_api_key"
)
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S")
_APP_DIR = "account-watcher"
_STATE_FILE = "state.db"

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]+$")]
Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class _LoadOptions:
    environ: Mapping[str, str]
    allow_fast_poll: bool


_LOAD_OPTIONS: ContextVar[_LoadOptions | None] = ContextVar("watcher_load_options", default=None)


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


def _api_key_ref(value: Any) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("literal_secret", LITERAL_KEY_MESSAGE)
    try:
        ref = parse_ref(value.strip())
    except ValueError as exc:
        raise PydanticCustomError("secret_ref", "{reason}", {"reason": str(exc)}) from None
    if ref is None:
        raise PydanticCustomError("literal_secret", LITERAL_KEY_MESSAGE)
    return ref


ApiKeyRef = Annotated[
    SecretRef,
    PlainValidator(_api_key_ref),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^(env|file|credential):.+$"}),
]
"""A secret reference for an API key; anything else is refused without being echoed."""


def _route_url(value: str) -> str:
    text = value.strip()
    try:
        ref = parse_ref(text)
    except ValueError as exc:
        raise PydanticCustomError("secret_ref", "{reason}", {"reason": str(exc)}) from None
    if ref is None and not _URL_SCHEME.match(text):
        raise PydanticCustomError(
            "route_url",
            "not a secret reference (env:NAME, file:PATH, credential:NAME) "
            "or an apprise URL (scheme://...)",
        )
    return text


RouteUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_route_url)
]
"""A notification URL: a secret reference or a literal apprise URL."""


def mask_url(url: str) -> str:
    """A notification URL as it may be shown: references as they are, literals masked.

    In: `env:SLACK_URL` or `mailtos://user:pw@host`. Out: `env:SLACK_URL` or
    `mailtos://***`.
    """
    try:
        if parse_ref(url) is not None:
            return url
    except ValueError:
        pass
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://***" if sep else "***"


def _fast_poll_allowed(info: ValidationInfo) -> bool:
    if isinstance(info.context, Mapping) and info.context.get("allow_fast_poll"):
        return True
    options = _LOAD_OPTIONS.get()
    return options is not None and options.allow_fast_poll


def _strict_config() -> ConfigDict:
    return ConfigDict(extra="forbid", frozen=True, defer_build=True)


# --- sections ----------------------------------------------------------------------


class TopupConfig(BaseModel):
    """`accounts[].topup`: paying from the stored payment method (DESIGN section 6)."""

    # Defaults are validated too: an `amount` above the default `max_per_day` is an error.
    model_config = ConfigDict(**_strict_config(), validate_default=True)

    enabled: bool = False
    amount: TopupMoney = Decimal("100.00")
    max_per_day: TopupMoney = Decimal("300.00")
    max_per_month: TopupMoney | None = None  # rolling 30 days; None: no monthly cap
    min_interval: Duration = timedelta(hours=1)
    verify_within: Duration = timedelta(minutes=10)

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

    @field_validator("min_interval", "verify_within")
    @classmethod
    def _positive_duration(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise PydanticCustomError("topup_duration", "must be longer than 0s")
        return value


class AccountConfig(BaseModel):
    """One entry of `accounts`."""

    model_config = _strict_config()

    name: Name = "default"
    provider: Literal["telnyx"] = "telnyx"
    api_key: ApiKeyRef = SecretRef("env", "TELNYX_API_KEY")
    base_url: str = DEFAULT_BASE_URL
    topup: TopupConfig = Field(default_factory=TopupConfig)

    @field_validator("topup", mode="before")
    @classmethod
    def _empty_topup_is_defaults(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value.strip())
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
            raise PydanticCustomError("base_url", "must be an http:// or https:// URL")
        if parts.username or parts.password:
            raise PydanticCustomError(
                "base_url", "must not contain credentials; the API key goes in api_key"
            )
        if parts.query or parts.fragment:
            raise PydanticCustomError("base_url", "must not have a query or fragment")
        return value.strip().rstrip("/")


class PollConfig(BaseModel):
    """`poll`: how often cycles start, how long one HTTP request may take, and how long a
    source may fail before the built-in `watcher-source-down` alert fires (at once for a
    rejected key)."""

    model_config = _strict_config()

    interval: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=10)
    source_down_after: Duration = timedelta(minutes=5)

    @model_validator(mode="before")
    @classmethod
    def _default_timeout_fits(cls, data: Any) -> Any:
        """With a fast poll and no explicit timeout, the timeout is the interval."""
        if not isinstance(data, Mapping) or "timeout" in data or "interval" not in data:
            return data
        try:
            interval = parse_duration(data["interval"])
        except ValueError:
            return data
        if interval < MIN_POLL_INTERVAL:
            return {**data, "timeout": interval}
        return data

    @field_validator("interval")
    @classmethod
    def _interval_floor(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        if value <= timedelta(0):
            raise PydanticCustomError("poll_interval", "must be longer than 0s")
        if value < MIN_POLL_INTERVAL and not _fast_poll_allowed(info):
            raise PydanticCustomError(
                "poll_interval",
                "must be at least {minimum} (got {value})",
                {"minimum": duration_text(MIN_POLL_INTERVAL), "value": duration_text(value)},
            )
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        if value <= timedelta(0):
            raise PydanticCustomError("poll_timeout", "must be longer than 0s")
        interval = info.data.get("interval")
        if isinstance(interval, timedelta) and value > interval:
            raise PydanticCustomError(
                "poll_timeout",
                "must be at most poll.interval ({interval}; got {value})",
                {"interval": duration_text(interval), "value": duration_text(value)},
            )
        return value


class StateConfig(BaseModel):
    """`state`: where the SQLite state database lives."""

    model_config = _strict_config()

    path: Path | None = None

    def resolve_state_path(
        self, environ: Mapping[str, str], config_dir: Path | None = None
    ) -> Path:
        """The state database path.

        In: the environment; the config file's directory (a relative `state.path` is
        taken from there). Out, first that applies: `state.path`;
        `$STATE_DIRECTORY/state.db` (systemd StateDirectory=, first entry);
        `$XDG_STATE_HOME/account-watcher/state.db` (when absolute);
        `~/.local/state/account-watcher/state.db`.
        """
        if self.path is not None:
            path = _expand_home(self.path, environ)
            return path if path.is_absolute() or config_dir is None else config_dir / path
        state_directory = environ.get("STATE_DIRECTORY", "").split(":")[0]
        if state_directory:
            return Path(state_directory) / _STATE_FILE
        xdg = environ.get("XDG_STATE_HOME", "")
        if xdg and Path(xdg).is_absolute():
            return Path(xdg) / _APP_DIR / _STATE_FILE
        return _home(environ) / ".local" / "state" / _APP_DIR / _STATE_FILE


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME")
    return Path(home) if home else Path.home()


def _expand_home(path: Path, environ: Mapping[str, str]) -> Path:
    if path.parts and path.parts[0] == "~":
        return _home(environ).joinpath(*path.parts[1:])
    return path


class RouteConfig(BaseModel):
    """`notify.routes.NAME`: where alerts of at least `min_severity` go."""

    model_config = _strict_config()

    urls: list[RouteUrl] = Field(min_length=1)
    min_severity: Severity = "info"
    fallback: str | None = None  # route used when every URL of this route keeps failing
    mute: list[MuteSpec] = Field(default_factory=list)  # quiet hours: watcher.core.mute

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        """repr() shows references, but literal URLs (which may hold passwords) masked."""
        for name, value in super().__repr_args__():
            yield name, ([mask_url(url) for url in value] if name == "urls" else value)


class NotifyConfig(BaseModel):
    """`notify`: routes, the default route and how often a firing alert repeats."""

    model_config = _strict_config()

    routes: dict[Name, RouteConfig] = Field(default_factory=dict)
    default_route: str | None = None
    repeat_interval: Duration = timedelta(hours=4)
    send_resolved: bool = True
    give_up_after: Duration = timedelta(hours=24)  # undelivered notifications older are dropped
    failures_before_fallback: int = Field(default=3, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _only_route_is_default(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or data.get("default_route") is not None:
            return data
        routes = data.get("routes")
        if isinstance(routes, Mapping) and len(routes) == 1:
            return {**data, "default_route": str(next(iter(routes)))}
        return data

    @field_validator("default_route")
    @classmethod
    def _names_a_route(cls, value: str | None, info: ValidationInfo) -> str | None:
        routes = info.data.get("routes")
        if value is None or routes is None or value in routes:
            return value
        known = ", ".join(sorted(routes)) or "none are defined"
        raise PydanticCustomError(
            "unknown_route",
            "'{name}' is not a route in notify.routes (routes: {known})",
            {"name": value, "known": known},
        )

    @model_validator(mode="after")
    def _fallbacks_name_routes(self) -> Self:
        for name, route in self.routes.items():
            where = f"notify.routes.{name}.fallback"
            if route.fallback is not None and route.fallback not in self.routes:
                raise ValueError(f"{where}: {route.fallback!r} is not a route")
            if route.fallback == name:
                raise ValueError(f"{where}: a route cannot fall back to itself")
        return self

    @field_validator("repeat_interval")
    @classmethod
    def _positive_repeat(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise PydanticCustomError("repeat_interval", "must be longer than 0s")
        return value


class MetricsConfig(BaseModel):
    """`metrics`: optional HTTP listener for /metrics and /healthz."""

    model_config = _strict_config()

    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            _split_host_port(value)
        return value

    def address(self) -> tuple[str, int] | None:
        """`(host, port)` to bind, or None when metrics are off."""
        return None if self.listen is None else _split_host_port(self.listen)


def _split_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise PydanticCustomError("listen", "must be host:port, e.g. 127.0.0.1:9464 or [::1]:9464")
    return host, int(port)


class LogConfig(BaseModel):
    """`log`: level and format (auto = JSON when stderr is not a TTY)."""

    model_config = _strict_config()

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


def _default_accounts() -> list[AccountConfig]:
    return [AccountConfig()]


def _default_rules() -> list[str]:
    return ["rules/*.yaml"]


class Settings(BaseSettings):
    """The whole configuration file; `WATCHER_<SECTION>__<KEY>` variables override it."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        env_ignore_empty=True,
        case_sensitive=False,
    )

    accounts: list[AccountConfig] = Field(default_factory=_default_accounts, min_length=1)
    poll: PollConfig = Field(default_factory=PollConfig)
    rules: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=_default_rules
    )
    state: StateConfig = Field(default_factory=StateConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    @field_validator("poll", "state", "notify", "metrics", "log", mode="before")
    @classmethod
    def _empty_section_is_defaults(cls, value: Any) -> Any:
        """`metrics:` with every key commented out reads as null: use the defaults."""
        return {} if value is None else value

    @field_validator("accounts")
    @classmethod
    def _unique_names(cls, value: list[AccountConfig]) -> list[AccountConfig]:
        names = [account.name for account in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise PydanticCustomError(
                "duplicate_account",
                "account names must be unique; used more than once: {names}",
                {"names": ", ".join(twice)},
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first (it wins), then the file's data; no dotenv, no secrets dir."""
        options = _LOAD_OPTIONS.get()
        env = env_settings if options is None else _MappingEnvSource(settings_cls, options.environ)
        return env, init_settings

    def rule_globs(self, config_dir: Path) -> list[str]:
        """`rules` as absolute glob patterns (relative ones start at `config_dir`)."""
        return [
            pattern if Path(pattern).is_absolute() else str(config_dir / pattern)
            for pattern in (os.path.expanduser(p) for p in self.rules)
        ]

    def account(self, name: str) -> AccountConfig:
        """The account called `name`. Raises: `KeyError`."""
        for account in self.accounts:
            if account.name == name:
                return account
        raise KeyError(name)


class _MappingEnvSource(EnvSettingsSource):
    """The environment source reading a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


# --- loading -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedSettings:
    """Validated settings with the file they came from (`config_dir` anchors rule globs)."""

    settings: Settings
    path: Path
    config_dir: Path
    # The parsed file, for `file:line:col` of later checks. Not in repr(): it holds the
    # raw values, literal notification URLs with their passwords among them.
    doc: YamlDoc | None = field(default=None, repr=False, compare=False)

    def rule_globs(self) -> list[str]:
        """Absolute rule file globs."""
        return self.settings.rule_globs(self.config_dir)


def fast_poll_allowed(environ: Mapping[str, str]) -> bool:
    """`WATCHER_ALLOW_FAST_POLL=1` lifts the 10s minimum of `poll.interval` (tests, demos).

    Read here, by `load_settings`, so that every command judges a config alike.
    """
    return environ.get(FAST_POLL_VARIABLE) == "1"


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$WATCHER_CONFIG`, else `/etc/account-watcher/config.yaml`."""
    env = os.environ if environ is None else environ
    configured = env.get("WATCHER_CONFIG", "")
    return Path(configured) if configured else DEFAULT_CONFIG_PATH


def load_settings(
    path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    allow_fast_poll: bool = False,
) -> LoadedSettings:
    """Read, merge and validate the configuration.

    In: the config file; the environment (default `os.environ`) whose
    `WATCHER_<SECTION>__<KEY>` variables override file values; `allow_fast_poll` (or
    `WATCHER_ALLOW_FAST_POLL=1` in that environment) lifts the 10s minimum of
    `poll.interval` (demo, tests).
    Out: `LoadedSettings`. An empty file gives the defaults.
    Raises: `ConfigError` with every problem at once, each `file:line:col: loc: message`
    (or `WATCHER_X__Y: message` for environment values); never a secret's value.
    """
    env = os.environ if environ is None else environ
    if not path.exists():
        raise ConfigError(
            f"{path}: no such file (give --config PATH or set WATCHER_CONFIG; "
            "an empty file is a valid config)"
        )
    doc = load_yaml(path)
    data = _top_mapping(path, doc)
    env_data = _env_values(env)
    fast = allow_fast_poll or fast_poll_allowed(env)
    token = _LOAD_OPTIONS.set(_LoadOptions(env, fast))
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, doc, exc, env_data, env)) from None
    except SettingsError as exc:
        raise ConfigError(_env_parse_error(exc, env)) from None
    finally:
        _LOAD_OPTIONS.reset(token)
    return LoadedSettings(settings=settings, path=path, config_dir=path.absolute().parent, doc=doc)


def _top_mapping(path: Path, doc: YamlDoc) -> dict[str, Any]:
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        line, col = doc.locate(())
        raise ConfigError(f"{path}:{line}:{col}: the file must be a mapping of sections")
    private = [key for key in doc.data if not isinstance(key, str) or key.startswith("_")]
    if private:
        raise ConfigError(
            [
                f"{path}:{':'.join(map(str, doc.locate((str(key),), key=True)))}: "
                f"{key}: Extra inputs are not permitted"
                for key in private
            ]
        )
    return dict(doc.data)


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        return _MappingEnvSource(Settings, environ)()
    except SettingsError as exc:
        raise ConfigError(_env_parse_error(exc, environ)) from None


def _env_parse_error(exc: SettingsError, environ: Mapping[str, str]) -> str:
    match = re.search(r'field "([^"]+)"', str(exc))
    field_name = match.group(1) if match else ""
    names = sorted(
        name
        for name in environ
        if name.upper() == f"{ENV_PREFIX}{field_name.upper()}"
        or name.upper().startswith(f"{ENV_PREFIX}{field_name.upper()}{ENV_DELIMITER}")
    )
    where = ", ".join(names) or "environment"
    return f"{where}: not valid JSON for {field_name or 'a setting'}"


def _describe(
    path: Path,
    doc: YamlDoc,
    exc: ValidationError,
    env_data: Mapping[str, Any],
    environ: Mapping[str, str],
) -> list[str]:
    file_lines: list[tuple[int, int, int, str]] = []
    env_lines: list[str] = []
    env_names = {name.upper(): name for name in environ if name.upper().startswith(ENV_PREFIX)}
    for order, error in enumerate(exc.errors(include_url=False, include_input=False)):
        loc = tuple(error["loc"])
        origin = _env_origin(loc, str(error["type"]), env_data, env_names)
        if origin is None:
            place = doc.place(loc, error_type=str(error["type"]))
            file_lines.append((place.line, place.col, order, format_error(path, doc, error)))
            continue
        name, consumed = origin
        message = error_message(error)
        rest = loc[consumed:]
        env_lines.append(f"{name}: {format_loc(loc)}: {message}" if rest else f"{name}: {message}")
    return [line for *_, line in sorted(file_lines)] + env_lines


def _env_origin(
    loc: tuple[int | str, ...],
    error_type: str,
    env_data: Mapping[str, Any],
    env_names: Mapping[str, str],
) -> tuple[str, int] | None:
    """The environment variable an error's value came from, and how much of loc it covers.

    None when the value came from the file (or from both, e.g. a section-level check).
    """
    node: Any = env_data
    names: list[str] = []
    best: tuple[str, int] | None = None
    consumed = 0
    for element in loc:
        if isinstance(node, Mapping) and str(element) in node:
            node = node[str(element)]
            names.append(str(element).upper())
            candidate = ENV_PREFIX + ENV_DELIMITER.join(names)
            if candidate in env_names:
                best = (env_names[candidate], consumed + 1)
        elif isinstance(node, list) and isinstance(element, int) and element < len(node):
            node = node[element]
            names.append(str(element))
        else:
            break
        consumed += 1
    if best is None:
        return None
    whole = consumed == len(loc)
    inside_value = not isinstance(node, Mapping)
    missing_here = error_type == "missing" and consumed == len(loc) - 1
    return best if whole or inside_value or missing_here else None


# --- secrets -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedSecrets:
    """Secrets read from the references in the settings; values only as `SecretStr`."""

    api_keys: dict[str, SecretStr] = field(default_factory=dict)
    route_urls: dict[str, list[SecretStr]] = field(default_factory=dict)


def resolve_secrets(
    settings: Settings, *, environ: Mapping[str, str], config_dir: Path
) -> ResolvedSecrets:
    """Read every API key and notification URL the settings refer to.

    In: settings; the environment; the config file's directory (for relative `file:`).
    Out: `ResolvedSecrets` (literal URLs are wrapped in `SecretStr` too). Every value is
    registered with the log scrubber (`watcher.service.logs`).
    Raises: `SecretError` listing every reference that cannot be resolved.
    """
    resolved, errors = _resolve_all(settings, environ=environ, config_dir=config_dir)
    if errors:
        raise SecretError(errors)
    return resolved


def check_secrets(
    settings: Settings, *, environ: Mapping[str, str], config_dir: Path, routes: bool = True
) -> list[str]:
    """Like `resolve_secrets`, but returns the problems as warnings instead of raising.

    For `check` in CI, where credentials are not present; `routes=False` for the API keys
    only. Out: one sentence per problem.
    """
    return _resolve_all(settings, environ=environ, config_dir=config_dir, routes=routes)[1]


def resolve_route_secrets(
    settings: Settings, *, environ: Mapping[str, str], config_dir: Path
) -> ResolvedSecrets:
    """Like `resolve_secrets`, for the notification URLs only (no API key is needed).

    Raises: `SecretError` listing every URL reference that cannot be resolved.
    """
    resolved, errors = _resolve_all(
        settings, environ=environ, config_dir=config_dir, accounts=False
    )
    if errors:
        raise SecretError(errors)
    return resolved


def _resolve_all(
    settings: Settings,
    *,
    environ: Mapping[str, str],
    config_dir: Path,
    accounts: bool = True,
    routes: bool = True,
) -> tuple[ResolvedSecrets, list[str]]:
    resolved = ResolvedSecrets()
    errors: list[str] = []
    for account in settings.accounts if accounts else []:
        try:
            key = resolve(account.api_key, environ=environ, base_dir=config_dir)
        except SecretError as exc:
            errors.extend(f"account {account.name}: {message}" for message in exc.errors)
            continue
        register_secret(key.get_secret_value())
        resolved.api_keys[account.name] = key
    for route_name, route in settings.notify.routes.items() if routes else []:
        urls = []
        for url in route.urls:
            try:
                urls.append(resolve_route_url(url, environ=environ, config_dir=config_dir))
            except SecretError as exc:
                errors.extend(f"route {route_name}: {message}" for message in exc.errors)
        resolved.route_urls[route_name] = urls
    return resolved, errors


def resolve_route_url(url: str, *, environ: Mapping[str, str], config_dir: Path) -> SecretStr:
    """One notification URL of a route: a literal as it is, a reference read.

    Out: the URL as `SecretStr`, registered with the log scrubber. Raises: `SecretError`.
    """
    ref = parse_ref(url)
    value = SecretStr(url) if ref is None else resolve(ref, environ=environ, base_dir=config_dir)
    register_url_secrets(value.get_secret_value())
    return value
