"""The configuration file (DESIGN section 3): the whole model, loading, secret resolution.

`load_settings` reads one YAML file, lays `WATCHER_<SECTION>__<KEY>` environment
variables over it and validates everything at once; each problem is reported as
`file:line:col: loc: message` (or `WATCHER_...: message` when it came from the
environment). The models (`watcher.config.accounts`, `watcher.config.sections`) hold
secret *references*; `resolve_secrets` reads them (`watcher.config.resolve`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StringConstraints, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources.utils import parse_env_vars

from watcher.config.accounts import (
    LITERAL_KEY_MESSAGE,
    AccountConfig,
    TelnyxAccountConfig,
    TopupConfig,
    VonageAccountConfig,
    VonageTopupConfig,
    foreign_key_hint,
    untagged,
)
from watcher.config.resolve import ResolvedSecrets, resolve_all, resolve_route_url
from watcher.config.secrets import SecretError
from watcher.config.sections import (
    LOAD_OPTIONS,
    LoadOptions,
    LogConfig,
    MetricsConfig,
    NotifyConfig,
    PollConfig,
    RouteConfig,
    StateConfig,
    WebConfig,
    mask_url,
    require_token,
)
from watcher.config.yamlfile import ConfigError, YamlDoc, error_message, format_error, format_loc
from watcher.config.yamlfile import load_yaml as load_yaml

__all__ = [
    "LITERAL_KEY_MESSAGE",
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
    "TelnyxAccountConfig",
    "TopupConfig",
    "VonageAccountConfig",
    "VonageTopupConfig",
    "check_secrets",
    "default_config_path",
    "fast_poll_allowed",
    "load_settings",
    "mask_url",
    "resolve_route_url",
    "resolve_secrets",
]

DEFAULT_CONFIG_PATH = Path("/etc/account-watcher/config.yaml")
ENV_PREFIX = "WATCHER_"
ENV_DELIMITER = "__"
FAST_POLL_VARIABLE = "WATCHER_ALLOW_FAST_POLL"


def _default_accounts() -> list[AccountConfig]:
    return [TelnyxAccountConfig()]


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
    web: WebConfig = Field(default_factory=WebConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, validate_default=True)
    log: LogConfig = Field(default_factory=LogConfig)

    @field_validator("poll", "state", "notify", "web", "metrics", "log", mode="before")
    @classmethod
    def _empty_section_is_defaults(cls, value: Any) -> Any:
        """`metrics:` with every key commented out reads as null: use the defaults."""
        return {} if value is None else value

    @field_validator("metrics")
    @classmethod
    def _alias_of_web_listen(cls, value: MetricsConfig, info: ValidationInfo) -> MetricsConfig:
        """`metrics.listen` is the older spelling of `web.listen`: both set must agree."""
        web = info.data.get("web")
        if value.listen is None or not isinstance(web, WebConfig):
            return value
        if web.listen is not None and web.listen != value.listen:
            raise PydanticCustomError(
                "listen_alias",
                "listen ({old}) differs from web.listen ({new}); metrics.listen is its older "
                "spelling: keep web.listen only",
                {"old": value.listen, "new": web.listen},
            )
        require_token(value.listen, web.token)
        return value

    def web_address(self) -> tuple[str, int] | None:
        """`(host, port)` of the web server (`web.listen`, else `metrics.listen`), or None."""
        return self.web.address() if self.web.listen is not None else self.metrics.address()

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
        options = LOAD_OPTIONS.get()
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
    token = LOAD_OPTIONS.set(LoadOptions(env, fast))
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, doc, exc, env_data, env)) from None
    except SettingsError as exc:
        raise ConfigError(_env_parse_error(exc, env)) from None
    finally:
        LOAD_OPTIONS.reset(token)
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
    for order, error in enumerate(
        map(_untagged, exc.errors(include_url=False, include_input=False))
    ):
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


def _untagged(error: Any) -> dict[str, Any]:
    """The error without the account union's tag in its loc; an unknown key that the
    other provider has says so."""
    loc = tuple(error["loc"])
    hint = foreign_key_hint(loc) if error["type"] == "extra_forbidden" else ""
    message = f"{error['msg']}; {hint}" if hint else error["msg"]
    return {**error, "loc": untagged(loc), "msg": message}


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


def resolve_secrets(
    settings: Settings, *, environ: Mapping[str, str], config_dir: Path
) -> ResolvedSecrets:
    """Read every API key, API secret, top-up `trx` and notification URL the settings
    refer to (a Vonage `trx` only when its top-up is enabled).

    In: settings; the environment; the config file's directory (for relative `file:`).
    Out: `ResolvedSecrets` (literal URLs are wrapped in `SecretStr` too). Every secret
    is registered with the log scrubber (`watcher.core.redact`).
    Raises: `SecretError` listing every reference that cannot be resolved.
    """
    resolved, errors = resolve_all(
        settings.accounts, settings.notify.routes, environ=environ, config_dir=config_dir
    )
    if errors:
        raise SecretError(errors)
    return resolved


def check_secrets(
    settings: Settings, *, environ: Mapping[str, str], config_dir: Path, routes: bool = True
) -> list[str]:
    """Like `resolve_secrets`, but returns the problems as warnings instead of raising.

    For `check` in CI, where credentials are not present; `routes=False` for the
    accounts' secrets only. Out: one sentence per problem.
    """
    chosen = settings.notify.routes if routes else {}
    return resolve_all(settings.accounts, chosen, environ=environ, config_dir=config_dir)[1]


def resolve_route_secrets(
    settings: Settings, *, environ: Mapping[str, str], config_dir: Path
) -> ResolvedSecrets:
    """Like `resolve_secrets`, for the notification URLs only (no API key is needed).

    Raises: `SecretError` listing every URL reference that cannot be resolved.
    """
    resolved, errors = resolve_all(
        (), settings.notify.routes, environ=environ, config_dir=config_dir
    )
    if errors:
        raise SecretError(errors)
    return resolved
