"""Can every alert reach someone? The delivery checks of `check` (DESIGN §3, §4).

Each problem is one `file:line:col: message` line:

- no route in `notify.routes`: nothing can be delivered, neither the rules' alerts nor
  the built-in ones (`watcher-source-down`, top-up notices);
- several routes and no `notify.default_route`: the built-in alerts have no route (rules
  without `route` are reported by `rulecheck` at each rule);
- a rule whose every severity is below the `min_severity` of every route it goes to: it
  can never notify anyone.

`check` reports them as errors; start-up and reload as warnings (an empty config is a
valid config, DESIGN §3: the daemon still watches and records).
"""

from __future__ import annotations

from collections.abc import Callable

from watcher.config.ruleload import LoadedRules
from watcher.config.settings import LoadedSettings, NotifyConfig
from watcher.core.model import Severity
from watcher.core.rules import BalanceRule, Rule

NO_ROUTE = (
    "notify.routes: no notification route is defined, so no alert can be delivered (neither "
    "the rules' nor the built-in watcher-source-down and top-up alerts); add one, e.g. "
    "notify: {routes: {ops: {urls: [env:OPS_URL]}}}"
)

RulePlace = Callable[[str, str], str]  # (rule name, key) -> "path:line:col: loc: "


def delivery_problems(loaded: LoadedSettings, found: LoadedRules, at: RulePlace) -> list[str]:
    """Every way an alert of this config would be dropped for want of a route.

    In: the settings, the loaded rules, and `at` giving the place of a rule's key
    (`RulePlaces.at`). Out: lines `file:line:col: message`, config problems first.
    """
    notify = loaded.settings.notify
    if not notify.routes:
        return [f"{_config_place(loaded, ('notify', 'routes'))}: {NO_ROUTE}"]
    problems = []
    if notify.default_route is None:
        known = ", ".join(sorted(notify.routes))
        problems.append(
            f"{_config_place(loaded, ('notify', 'routes'), key=True)}: notify.default_route: "
            "not set, and there is more than one route: the built-in alerts "
            "(watcher-source-down, notices of top-ups whose rule is gone) have no route; set "
            f"notify.default_route to one of {known}"
        )
    for rule in found.rules:
        problem = _severity_problem(rule, notify)
        if problem is not None:
            where = at(rule.name, "route") if rule.routes else f"{found.locations[rule.name]}: "
            problems.append(where + problem)
    return problems


def severities(rule: Rule) -> list[Severity]:
    """The severities a rule can fire at, least severe first."""
    return sorted(rule.levels) if isinstance(rule, BalanceRule) else [rule.level]


def _severity_problem(rule: Rule, notify: NotifyConfig) -> str | None:
    default = (notify.default_route,) if notify.default_route else ()
    names = [name for name in rule.routes or default if name in notify.routes]
    if not names:  # unknown routes or no default: reported by rulecheck
        return None
    floors = {name: Severity.parse(notify.routes[name].min_severity) for name in names}
    levels = severities(rule)
    if any(level >= floor for level in levels for floor in floors.values()):
        return None
    fires = ", ".join(level.label for level in levels)
    only = " only" if len(levels) == 1 else ""
    routes = ", ".join(f"{name}: {floor.label}" for name, floor in floors.items())
    via = "" if rule.routes else " (notify.default_route)"
    return (
        f"rule {rule.name!r} fires at {fires}{only}, below the min_severity of every route it "
        f"goes to{via} ({routes}): it can never notify anyone"
    )


def _config_place(loaded: LoadedSettings, loc: tuple[str, ...], *, key: bool = False) -> str:
    """`path:line:col` of the deepest part of `loc` the file has, else `path:1:1`."""
    doc = loaded.doc
    data = doc.data if doc is not None else None
    depth = 0
    node = data
    while depth < len(loc) and isinstance(node, dict) and loc[depth] in node:
        node = node[loc[depth]]
        depth += 1
    if doc is None or depth == 0:
        return f"{loaded.path}:1:1"
    whole = depth == len(loc)
    line, col = doc.locate(loc[:depth], key=key or not whole or node is None)
    return f"{loaded.path}:{line}:{col}"
