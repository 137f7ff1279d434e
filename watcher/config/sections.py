"""The sections of the configuration besides `accounts` (DESIGN section 3).

`poll`, `state`, `notify` (with its routes), `web`, `metrics` and `log`; every model forbids
unknown keys. `LOAD_OPTIONS` carries what one `load_settings` call allows (a fast poll).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from watcher.config.accounts import Name
from watcher.config.accounts import strict_config as _strict_config
from watcher.config.secrets import SecretRef, parse_ref
from watcher.core.digest import parse_at
from watcher.core.durations import Duration, duration_text, parse_duration
from watcher.core.mute import MuteSpec

MIN_POLL_INTERVAL = timedelta(seconds=10)
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S")
_APP_DIR = "account-watcher"
_STATE_FILE = "state.db"

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """What the running `load_settings` call allows: its environment, a fast poll."""

    environ: Mapping[str, str]
    allow_fast_poll: bool


LOAD_OPTIONS: ContextVar[LoadOptions | None] = ContextVar("watcher_load_options", default=None)


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
    options = LOAD_OPTIONS.get()
    return options is not None and options.allow_fast_poll


class PollConfig(BaseModel):
    """`poll`: how often cycles start, how long one HTTP request may take, how long a
    source may fail before the built-in `watcher-source-down` alert fires (at once for a
    rejected key), and how often slow sources are read (`slow_interval`)."""

    model_config = _strict_config()

    interval: Duration = timedelta(seconds=60)
    timeout: Duration = timedelta(seconds=10)
    source_down_after: Duration = timedelta(minutes=5)
    slow_interval: Duration = timedelta(minutes=10)
    """How often slow sources are read (Vonage secrets, settings, subaccounts)."""
    concurrency: int = Field(default=20, ge=1, le=1000)
    """Requests in flight to one provider host at most (all its accounts together)."""

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

    @field_validator("slow_interval")
    @classmethod
    def _slow_interval_positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise PydanticCustomError("poll_slow_interval", "must be longer than 0s")
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


LITERAL_STATE_URL_MESSAGE = (
    "a literal database URL is not allowed (it carries the password); store it in an "
    "environment variable or a systemd credential and write e.g. url: env:WATCHER_DB_URL "
    "or url: credential:watcher_db_url"
)


class StateConfig(BaseModel):
    """`state`: where the state lives: a SQLite file (`path`, the default) or a
    PostgreSQL database (`url`, a secret reference to a `postgresql://` URL)."""

    model_config = _strict_config()

    path: Path | None = None
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _url_is_a_reference(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("path") is not None:
            raise PydanticCustomError(
                "state_exclusive",
                "state.path and state.url are mutually exclusive: SQLite (path) or "
                "PostgreSQL (url), not both",
            )
        try:
            ref = parse_ref(value.strip())
        except ValueError as exc:
            raise PydanticCustomError("secret_ref", "{reason}", {"reason": str(exc)}) from None
        if ref is None:
            raise PydanticCustomError("literal_secret", LITERAL_STATE_URL_MESSAGE)
        return value.strip()

    def url_ref(self) -> SecretRef | None:
        """`url` as a reference, or None for the SQLite state."""
        return None if self.url is None else parse_ref(self.url)

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


def _digest_at(value: str) -> str:
    try:
        parse_at(value)
    except ValueError as exc:
        raise PydanticCustomError("digest_at", "{reason}", {"reason": str(exc)}) from None
    return value


class DigestConfig(BaseModel):
    """`notify.digest`: the daily digest (DESIGN §12) at `at` ("HH:MM [IANA zone]", UTC
    when no zone is given) to `route`."""

    model_config = _strict_config()

    at: Annotated[str, AfterValidator(_digest_at)]
    route: str


def _unknown_route(name: str, routes: Iterable[str], loc: tuple[str, ...]) -> ValidationError:
    """An `unknown_route` error at `loc` (relative to the field being validated)."""
    known = ", ".join(sorted(routes)) or "none are defined"
    error = PydanticCustomError(
        "unknown_route",
        "'{name}' is not a route in notify.routes (routes: {known})",
        {"name": name, "known": known},
    )
    details = InitErrorDetails(type=error, loc=loc, input=name)
    return ValidationError.from_exception_data("DigestConfig", [details])


class NotifyConfig(BaseModel):
    """`notify`: routes, the default route and how often a firing alert repeats."""

    model_config = _strict_config()

    routes: dict[Name, RouteConfig] = Field(default_factory=dict)
    default_route: str | None = None
    repeat_interval: Duration = timedelta(hours=4)
    send_resolved: bool = True
    give_up_after: Duration = timedelta(hours=24)  # undelivered notifications older are dropped
    failures_before_fallback: int = Field(default=3, ge=1)
    ack_expires: Duration = timedelta(hours=24)  # an ack lasts until resolve, or this long
    digest: DigestConfig | None = None  # the daily digest (watcher/notify/digest.py)

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

    @field_validator("digest")
    @classmethod
    def _digest_names_a_route(
        cls, value: DigestConfig | None, info: ValidationInfo
    ) -> DigestConfig | None:
        routes = info.data.get("routes")
        if value is None or routes is None or value.route in routes:
            return value
        raise _unknown_route(value.route, routes, ("route",))

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
    """`metrics`: the older spelling of `web.listen` (still accepted; see `WebConfig`)."""

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


class WebConfig(MetricsConfig):
    """`web`: the status page, `/api/v1/status`, `/metrics` and `/healthz` on `listen`
    (checked as `metrics.listen` is; `address()` is None when it is not set).

    `token` is a secret reference; when set, every request but `/healthz` must carry it
    (`Authorization: Bearer T` or `?token=T`), on every address. A `listen` that is not a
    loopback address requires it.
    """

    token: str | None = None

    @field_validator("token")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None:
            web_token_ref(value)
        return value

    @model_validator(mode="after")
    def _token_off_loopback(self) -> Self:
        require_token(self.listen, self.token)
        return self

    def token_ref(self) -> SecretRef | None:
        """The token's reference, or None when no token is configured."""
        return None if self.token is None else web_token_ref(self.token)


def web_token_ref(text: str) -> SecretRef:
    """`web.token` as a reference; a literal token is refused without being echoed."""
    try:
        ref = parse_ref(text.strip())
    except ValueError as exc:
        raise PydanticCustomError("secret_ref", "{reason}", {"reason": str(exc)}) from None
    if ref is None:
        raise PydanticCustomError(
            "literal_secret",
            "must be a secret reference (env:NAME, file:PATH or credential:NAME), "
            "not the token itself",
        )
    return ref


def is_loopback(host: str) -> bool:
    """`localhost`, `127.0.0.0/8` and `::1` are loopback; every other host is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_token(listen: str | None, token: str | None) -> None:
    """Raise when `listen` is not a loopback address and no token is set."""
    if listen is None or token is not None:
        return
    host, _ = _split_host_port(listen)
    if not is_loopback(host):
        raise PydanticCustomError(
            "web_token",
            "listen {listen} is not a loopback address: set web.token (a secret reference) "
            "so that only holders of the token can read the status page",
            {"listen": listen},
        )


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
