"""Warnings `check` gives about rules that are valid but cannot work as written.

Each warning is `path:line:col: rules[i].key: message`, pointing at the key concerned:

- `for` that is not a multiple of `poll.interval`: the condition is seen once per poll,
  so the wait is rounded up to the next multiple (e.g. `for: 90s` with a 1m poll is 2m).
- a `webhook_failures` `window` shorter than two poll intervals: each failure is counted
  by only one or two polls, and bursts that straddle a poll are split.
- a `forecast` whose `lookback` cannot hold `min_samples` samples or cover `min_span`
  of itself at this poll interval: it would never judge.
- a `forecast` whose `runs_out_within` is shorter than two polls: too late to act on.
- a `mute` window that has already ended (absolute windows only).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import datetime, timedelta

from watcher.config import topupcheck
from watcher.config.accounts import discovering
from watcher.config.providercheck import provider_errors
from watcher.config.routecheck import delivery_problems
from watcher.config.ruleload import LoadedRules
from watcher.config.settings import LoadedSettings
from watcher.config.yamlfile import YamlDoc, format_loc
from watcher.core.accountmatch import is_glob, may_select_children, selects
from watcher.core.capabilities import Capabilities
from watcher.core.durations import duration_text
from watcher.core.mute import AbsoluteWindow, parse_mute
from watcher.core.rules import AuditRule, CredentialsRule, ForecastRule, Rule, WebhookFailuresRule

Place = tuple[str, YamlDoc, int]  # path, document, index of the rule in `rules:`


class RulePlaces:
    """Where each key of each loaded rule is: `path:line:col: rules[i].key: `."""

    def __init__(self, found: LoadedRules) -> None:
        self._found = found
        self._places = _places(found)

    def at(self, rule: str, key: str | tuple[int | str, ...]) -> str:
        """The prefix for a message about `key` (dotted, e.g. `route.1`, or a tuple when a
        key holds dots, e.g. `("expect", "auto_reload")`) of rule `rule`."""
        return _where(self._places.get(rule), key, self._found.locations.get(rule, ""))


def rule_warnings(found: LoadedRules, interval: timedelta, now: datetime) -> list[str]:
    """Warnings for loaded rules at poll interval `interval` (see the module docstring).

    In: the rules as `load_rules` returned them, `poll.interval`, and `now` (for mute
    windows in the past). Out: warning lines, in file order. Never raises.
    """
    places = RulePlaces(found)
    return [
        places.at(rule.name, key) + message
        for rule in found.rules
        for key, message in _problems(rule, interval, now)
    ]


def reference_errors(
    found: LoadedRules,
    routes: Collection[str],
    accounts: Collection[str],
    parents: Collection[str] = (),
) -> list[str]:
    """Rules naming routes or accounts the config does not define, each at its key.

    An `accounts:` entry may be a glob (it must match a configured account) or name
    discovered accounts of a parent in `parents` (`reseller/*`, `reseller/x`)."""
    places = RulePlaces(found)
    known_routes = ", ".join(sorted(routes)) or "none are defined"
    known_accounts = ", ".join(sorted(accounts))
    errors: list[str] = []
    for rule in found.rules:
        listed = isinstance(rule.route, list)
        for index, route in enumerate(rule.routes):
            if route not in routes:
                key = f"route.{index}" if listed else "route"
                errors.append(
                    f"{places.at(rule.name, key)}route {route!r} is not defined in "
                    f"notify.routes (routes: {known_routes})"
                )
        if rule.escalate is not None and rule.escalate.route not in routes:
            errors.append(
                f"{places.at(rule.name, 'escalate.route')}route {rule.escalate.route!r} is not "
                f"defined in notify.routes (routes: {known_routes})"
            )
        for index, account in enumerate(rule.accounts or []):
            if not _account_known(account, accounts, parents):
                errors.append(
                    f"{places.at(rule.name, f'accounts.{index}')}account {account!r} is not "
                    f"defined in accounts (accounts: {known_accounts})"
                )
    return errors


def _account_known(pattern: str, accounts: Collection[str], parents: Collection[str]) -> bool:
    return (
        pattern in accounts
        or (is_glob(pattern) and any(selects([pattern], a) for a in accounts))
        or any(may_select_children(pattern, parent) for parent in parents)
    )


def _problems(rule: Rule, interval: timedelta, now: datetime) -> Iterator[tuple[str, str]]:
    poll = duration_text(interval)
    if not isinstance(rule, AuditRule) and rule.for_ % interval:
        effective = duration_text(interval * -(-rule.for_ // interval))
        yield (
            "for",
            (
                f"{duration_text(rule.for_)} is not a multiple of poll.interval ({poll}): the "
                f"condition is seen once per poll, so it takes effect as {effective}"
            ),
        )
    if isinstance(rule, WebhookFailuresRule) and rule.window < 2 * interval:
        yield (
            "window",
            (
                f"{duration_text(rule.window)} is shorter than two poll intervals "
                f"({duration_text(2 * interval)}): each failure is counted by one or two polls "
                "only; make it at least that long"
            ),
        )
    if isinstance(rule, ForecastRule):
        yield from _forecast_problems(rule, interval)
    if rule.escalate is not None and isinstance(rule, AuditRule | CredentialsRule):
        yield (
            "escalate",
            f"{rule.kind} rules alert once per event and have no firing episode to escalate; "
            "escalate has no effect here",
        )
    for index, spec in enumerate(rule.mute):
        window = parse_mute(spec)
        if isinstance(window, AbsoluteWindow) and window.end <= now:
            yield f"mute.{index}", f"the window {spec!r} has ended; remove it"


def _forecast_problems(rule: ForecastRule, interval: timedelta) -> Iterator[tuple[str, str]]:
    poll = duration_text(interval)
    steps = rule.lookback // interval
    if steps + 1 < rule.min_samples:
        yield (
            "lookback",
            (
                f"{duration_text(rule.lookback)} holds at most {steps + 1} samples at "
                f"poll.interval {poll}, fewer than min_samples ({rule.min_samples}): the rule "
                "would never judge"
            ),
        )
    elif interval * steps < rule.lookback * rule.min_span:
        yield (
            "lookback",
            (
                f"samples {poll} apart cannot cover min_span ({rule.min_span:g}) of "
                f"{duration_text(rule.lookback)}: the rule would never judge"
            ),
        )
    if rule.runs_out_within < 2 * interval:
        yield (
            "runs_out_within",
            (
                f"{duration_text(rule.runs_out_within)} is shorter than two poll intervals: "
                "the alert would come too late to act on"
            ),
        )


def _places(found: LoadedRules) -> dict[str, Place]:
    places: dict[str, Place] = {}
    for path, doc in found.docs.items():  # parsed once by `load_rules`
        entries = doc.data.get("rules") if isinstance(doc.data, dict) else None
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name not in places:
                places[name] = (str(path), doc, index)
    return places


def _where(place: Place | None, key: str | tuple[int | str, ...], fallback: str) -> str:
    if place is None:
        return f"{fallback}: "
    path, doc, index = place
    loc: tuple[int | str, ...] = ("rules", index, *(_loc(key) if isinstance(key, str) else key))
    line, col = doc.locate(loc)
    return f"{path}:{line}:{col}: {format_loc(loc)}: "


def _loc(key: str) -> tuple[int | str, ...]:
    return tuple(int(part) if part.isdigit() else part for part in key.split("."))


def validate(
    loaded: LoadedSettings,
    found: LoadedRules,
    now: datetime,
    capabilities: Mapping[str, Capabilities] | None = None,
    *,
    for_check: bool = False,
) -> tuple[list[str], list[str]]:
    """Every cross-check of rules against the config, shared by `check`, start-up and reload.

    In: the loaded settings and rules, `now` (for ended mute windows), `for_check`: a
    config that cannot work as meant (an alert without a route, a `rules:` glob matching
    no file) is an error for `check`, a warning at start-up and reload (an empty config is
    valid). Out: (errors, warnings), each `file:line:col: message`; secret references are
    not resolved here.
    """
    settings = loaded.settings
    errors = topupcheck.clarify_rule_errors(found.errors)
    topup_errors, topup_warnings = topupcheck.check_rules(
        found.rules, found.locations, settings.accounts
    )
    errors += topup_errors
    routes = set(settings.notify.routes)
    names = {a.name for a in settings.accounts}
    errors += reference_errors(found, routes, names, discovering(settings.accounts))
    errors += provider_errors(
        found.rules, settings.accounts, capabilities or {}, RulePlaces(found).at
    )
    if routes and settings.notify.default_route is None:
        errors += [
            f"{found.locations[rule.name]}: no route given and notify.default_route is not set"
            for rule in found.rules
            if not rule.routes
        ]
    unusable = _glob_problems(loaded, found)
    unusable += delivery_problems(loaded, found, RulePlaces(found).at)
    warnings = topup_warnings + rule_warnings(found, settings.poll.interval, now)
    if for_check:
        return errors + unusable, warnings
    return errors, unusable + warnings


def _glob_problems(loaded: LoadedSettings, found: LoadedRules) -> list[str]:
    """`rules:` globs that match no file, at their place in the config (`rules: []` says
    on purpose that there are none)."""
    data = loaded.doc.data if loaded.doc is not None else None
    in_file = data.get("rules") if isinstance(data, dict) else None
    out = []
    for pattern in found.unmatched:
        if loaded.doc is None or not isinstance(in_file, list) or pattern not in in_file:
            out.append(_unmatched_elsewhere(loaded, pattern))
            continue
        index = in_file.index(pattern)
        line, col = loaded.doc.locate(("rules", index))
        out.append(
            f"{loaded.path}:{line}:{col}: rules[{index}]: pattern {pattern!r} matches no file"
            f"{_NO_RULES_HINT}"
        )
    return out


_NO_RULES_HINT = "; write rules: [] if this config has no rules on purpose"


def _unmatched_elsewhere(loaded: LoadedSettings, pattern: str) -> str:
    """A glob from the default (no `rules:` in the file) or from `WATCHER_RULES`."""
    if "rules" not in loaded.settings.model_fields_set:
        return (
            f"{loaded.path}:1:1: rules: the default pattern {pattern!r} matches no file"
            f"{_NO_RULES_HINT}"
        )
    return f"WATCHER_RULES: pattern {pattern!r} matches no file{_NO_RULES_HINT}"
