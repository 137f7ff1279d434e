"""The import direction of DESIGN §9, checked on the source with `ast`.

`cli → service → notify, state, providers, config → core`, where notify may also import
state and config, state may import config, providers may import config and the shared
modules of `watcher/providers/` (never another provider's folder), and the core imports
only the core. Every import counts: module level, inside functions, relative ones
(`from . import x`) and those under `if TYPE_CHECKING:` — a type-only import is still a
dependency of the design (it is how the old circle daemon ↔ supervisor ↔ metrics hid).

Also: no import cycle between modules, and in the core no I/O library (httpx, apprise,
sqlite3, psycopg, structlog) and no clock (`datetime.now`, `time.time`, ...).

Every failure names `file:line`. The last tests feed the checker a small synthetic
package to show that it does fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import watcher

PACKAGE_DIR = Path(watcher.__file__).parent

ALLOWED: Mapping[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "config": frozenset({"config", "core"}),
    "state": frozenset({"state", "config", "core"}),
    "providers": frozenset({"providers", "config", "core"}),
    "notify": frozenset({"notify", "state", "config", "core"}),
    "service": frozenset({"service", "notify", "state", "providers", "config", "core"}),
    "cli": frozenset({"cli", "service", "notify", "state", "providers", "config", "core"}),
}
"""Which layers a layer may import. Modules at the top (`watcher/__main__.py`) may
import anything; nothing may import them."""

SHARED_PROVIDER_PACKAGES = frozenset({"simkit"})
"""Folders under `watcher/providers/` that are shared helpers, not a provider."""

CORE_BANNED = frozenset({"httpx", "apprise", "sqlite3", "psycopg", "psycopg2", "structlog"})
CLOCK_CALLS = frozenset(
    {
        ("datetime", "now"),
        ("datetime", "utcnow"),
        ("datetime", "today"),
        ("date", "today"),
        ("time", "time"),
        ("time", "time_ns"),
        ("time", "monotonic"),
        ("time", "monotonic_ns"),
        ("time", "perf_counter"),
    }
)

_PENDING_MOVES: Mapping[tuple[str, str], str] = {
    # TEMPORARY (kept empty): an upward import whose target another engineer is moving,
    # (importer, imported) -> where it is going. Emptied at each merge.
}

_KNOWN_CYCLES: Mapping[frozenset[str], str] = {}  # kept empty: untie a cycle instead


@dataclass(frozen=True, slots=True)
class Import:
    """One import of one module: where it is written and the module it resolves to."""

    importer: str
    target: str
    path: Path
    line: int

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root.parent)}:{self.line}"


@dataclass(frozen=True, slots=True)
class Tree:
    """Every module of a package: dotted name -> (file, parsed source)."""

    root: Path
    modules: Mapping[str, tuple[Path, ast.Module]]

    @classmethod
    def read(cls, root: Path) -> Tree:
        modules = {}
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = (path, ast.parse(path.read_text(), str(path)))
        return cls(root, modules)

    @property
    def package(self) -> str:
        return self.root.name

    def is_package(self, name: str) -> bool:
        return self.modules[name][0].name == "__init__.py"


def _resolve_base(tree: Tree, importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not tree.is_package(importer):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(tree: Tree, name: str) -> str:
    """The longest prefix of `name` that is a module of the tree ("" for none)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in tree.modules:
        parts.pop()
    return ".".join(parts)


def imported_names(tree: Tree, importer: str, node: ast.AST) -> Iterator[str]:
    """The dotted names an import statement brings in (for `from m import x`, `m.x`
    when that is a module, else `m`)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = _resolve_base(tree, importer, node)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            yield full if full in tree.modules else base


def imports(tree: Tree) -> list[Import]:
    """Every import between modules of the tree (each statement, anywhere in a file)."""
    found = []
    for importer, (path, module) in tree.modules.items():
        for node in ast.walk(module):
            for name in imported_names(tree, importer, node):
                target = _known(tree, name)
                if target and target != importer:
                    found.append(Import(importer, target, path, getattr(node, "lineno", 0)))
    return found


def layer(tree: Tree, module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else ""


def _provider_folder(tree: Tree, module: str) -> str | None:
    """`telnyx` for `<pkg>.providers.telnyx.client`; None for a shared module."""
    parts = module.split(".")
    if len(parts) < 3 or parts[1] != "providers":
        return None
    folder = tree.root / "providers" / parts[2]
    return parts[2] if folder.is_dir() and parts[2] not in SHARED_PROVIDER_PACKAGES else None


def direction_errors(tree: Tree, pending: Mapping[tuple[str, str], str] = {}) -> list[str]:
    """`file:line: a imports b (upward: ...)` for every import against the direction."""
    errors = []
    for imp in imports(tree):
        if (imp.importer, imp.target) in pending:
            continue
        why = _against(tree, imp)
        if why:
            errors.append(f"{imp.where(tree.root)}: {imp.importer} imports {imp.target}: {why}")
    return list(dict.fromkeys(errors))


def _against(tree: Tree, imp: Import) -> str:
    source, target = layer(tree, imp.importer), layer(tree, imp.target)
    if target == "":
        return "nothing imports the top-level modules"
    if source and target not in ALLOWED[source]:
        return f"{source} may import only {', '.join(sorted(ALLOWED[source]))}"
    if source == target == "providers":
        mine, theirs = _provider_folder(tree, imp.importer), _provider_folder(tree, imp.target)
        if theirs is not None and theirs != mine:
            owner = f"provider {mine}" if mine else "a shared providers module"
            return f"{owner} imports provider {theirs}"
    return ""


def cycles(tree: Tree, known: Mapping[frozenset[str], str] = {}) -> list[str]:
    """One line per import cycle: `a (file:line) -> b (file:line) -> ... -> a`."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports(tree):
        edges.setdefault(imp.importer, {}).setdefault(imp.target, imp)
    out = []
    for component in _strongly_connected(edges):
        if len(component) > 1 and frozenset(component) not in known:
            out.append(_cycle_text(tree, edges, sorted(component)))
    return sorted(out)


def _strongly_connected(edges: Mapping[str, Mapping[str, Import]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    out.append(_pop_component(stack, on_stack, node))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, {})))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def _pop_component(stack: list[str], on_stack: set[str], node: str) -> set[str]:
    component = set()
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.add(member)
        if member == node:
            return component


def _cycle_text(tree: Tree, edges: Mapping[str, Mapping[str, Import]], members: list[str]) -> str:
    """A shortest cycle through the first member, inside the component."""
    start, inside = members[0], set(members)
    paths: dict[str, list[Import]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target, imp in sorted(edges.get(node, {}).items()):
            if target == start:
                steps = [*paths[node], imp]
                hops = " -> ".join(f"{s.target} ({s.where(tree.root)})" for s in steps)
                return f"import cycle: {start} -> {hops}"
            if target in inside and target not in paths:
                paths[target] = [*paths[node], imp]
                queue.append(target)
    return f"import cycle among {', '.join(members)}"  # pragma: no cover


def core_errors(tree: Tree) -> list[str]:
    """I/O libraries and clock reads in the core, each with `file:line`."""
    errors = []
    for name, (path, module) in tree.modules.items():
        if layer(tree, name) != "core":
            continue
        where = path.relative_to(tree.root.parent)
        for node in ast.walk(module):
            problem = _core_problem(tree, name, node)
            if problem:
                errors.append(f"{where}:{getattr(node, 'lineno', 0)}: {problem}")
    return errors


def _core_problem(tree: Tree, module: str, node: ast.AST) -> str:
    for imported in imported_names(tree, module, node):
        if imported.split(".")[0] in CORE_BANNED:
            return f"the core imports {imported}"
    if isinstance(node, ast.ImportFrom) and node.module == "time":
        clocks = [a.name for a in node.names if ("time", a.name) in CLOCK_CALLS]
        if clocks:
            return f"the core imports the clock time.{clocks[0]}"
    if isinstance(node, ast.Attribute):
        owner = _last_name(node.value)
        if (owner, node.attr) in CLOCK_CALLS:
            return f"the core reads the clock: {owner}.{node.attr}"
    return ""


def _last_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


# ---------------------------------------------------------------------------- the tests


def test_imports_go_one_way() -> None:
    errors = direction_errors(Tree.read(PACKAGE_DIR), _PENDING_MOVES)
    assert errors == [], "\n".join(errors)


def test_no_import_cycles() -> None:
    found = cycles(Tree.read(PACKAGE_DIR), _KNOWN_CYCLES)
    assert found == [], "\n".join(found)


def test_the_core_does_no_io_and_reads_no_clock() -> None:
    errors = core_errors(Tree.read(PACKAGE_DIR))
    assert errors == [], "\n".join(errors)


def test_the_checker_sees_the_whole_package() -> None:
    tree = Tree.read(PACKAGE_DIR)
    found = {(i.importer, i.target) for i in imports(tree)}
    assert ("watcher.service.cycle", "watcher.core.decide") in found
    assert ("watcher.cli.daemon", "watcher.service.supervisor") in found
    assert {layer(tree, m) for m in tree.modules} >= set(ALLOWED)


# -- the checker fails where it should: a small synthetic package ------------------------


def _package(root: Path, files: Mapping[str, str]) -> Tree:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [root / "pkg", *(p for p in (root / "pkg").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return Tree.read(root / "pkg")


SYNTHETIC = {
    "core/model.py": "import datetime\n\nSTAMP = datetime.datetime.now()\n",
    "core/rules.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
    "    from pkg.service.cycle import Daemon\n",
    "core/clock.py": "from time import monotonic\nimport structlog\n",
    "config/settings.py": "from ..core import model\n",
    "service/cycle.py": "from pkg.service import loop\n",
    "service/loop.py": "def run() -> None:\n    from . import metrics\n",
    "service/metrics.py": "from pkg.service.cycle import Daemon\n",
    "providers/base.py": "from pkg.providers.telnyx import client\n",
    "providers/telnyx/client.py": "from pkg.providers.base import X\n",
    "providers/vonage/client.py": "from pkg.providers.telnyx.client import C\n"
    "from pkg.providers.simkit import parts\n",
    "providers/simkit/parts.py": "",
    "state/store.py": "import pkg.notify.outbox\n",
    "notify/outbox.py": "from pkg.state.store import Store\n",
}


def test_an_upward_import_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    errors = direction_errors(_package(tmp_path, SYNTHETIC))
    assert errors == [
        "pkg/core/rules.py:4: pkg.core.rules imports pkg.service.cycle: core may import only core",
        "pkg/providers/base.py:1: pkg.providers.base imports pkg.providers.telnyx.client: "
        "a shared providers module imports provider telnyx",
        "pkg/providers/vonage/client.py:1: pkg.providers.vonage.client imports "
        "pkg.providers.telnyx.client: provider vonage imports provider telnyx",
        "pkg/state/store.py:1: pkg.state.store imports pkg.notify.outbox: "
        "state may import only config, core, state",
    ]


def test_a_cycle_is_named_with_each_import(tmp_path: Path) -> None:
    found = cycles(_package(tmp_path, SYNTHETIC))
    assert found == [
        "import cycle: pkg.notify.outbox -> pkg.state.store (pkg/notify/outbox.py:1) -> "
        "pkg.notify.outbox (pkg/state/store.py:1)",
        "import cycle: pkg.providers.base -> pkg.providers.telnyx.client "
        "(pkg/providers/base.py:1) -> pkg.providers.base (pkg/providers/telnyx/client.py:1)",
        "import cycle: pkg.service.cycle -> pkg.service.loop (pkg/service/cycle.py:1) -> "
        "pkg.service.metrics (pkg/service/loop.py:2) -> pkg.service.cycle "
        "(pkg/service/metrics.py:1)",
    ]


def test_io_and_clock_in_the_core_are_named(tmp_path: Path) -> None:
    errors = core_errors(_package(tmp_path, SYNTHETIC))
    assert errors == [
        "pkg/core/clock.py:1: the core imports the clock time.monotonic",
        "pkg/core/clock.py:2: the core imports structlog",
        "pkg/core/model.py:3: the core reads the clock: datetime.now",
    ]


def test_a_relative_import_resolves_like_an_absolute_one(tmp_path: Path) -> None:
    tree = _package(tmp_path, SYNTHETIC)
    found = {(i.importer, i.target, i.line) for i in imports(tree)}
    assert ("pkg.config.settings", "pkg.core.model", 1) in found
    assert ("pkg.service.loop", "pkg.service.metrics", 2) in found  # inside a function
