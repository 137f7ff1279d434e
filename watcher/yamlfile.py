"""YAML files with line numbers, so that every config error names `file:line:col`.

`load_yaml` parses a file twice over the same text: `yaml.safe_load` for the data and
`yaml.compose` for the node tree, whose marks locate pydantic errors (which carry a
`loc` path but never a line).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Loc = tuple[int | str, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_KEY_ERRORS = frozenset({"extra_forbidden"})
_MISSING_ERRORS = frozenset({"missing", "missing_keyword_argument"})
_MESSAGE_PREFIXES = ("Value error, ", "Assertion failed, ")


class ConfigError(Exception):
    """A configuration or rule file is unusable.

    `.errors` holds every problem, each one line, `path:line:col: message` where a place
    is known. `str()` joins them with newlines. Messages never hold a secret's value.
    """

    def __init__(self, errors: str | Sequence[str]) -> None:
        self.errors: list[str] = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True, slots=True)
class Place:
    """Where an error points: 1-based line and column, and the loc worth showing."""

    line: int
    col: int
    loc: Loc


@dataclass(frozen=True, slots=True)
class YamlDoc:
    """A parsed YAML file: plain `data` and the `root` node tree (None when empty)."""

    data: Any
    root: Node | None

    def locate(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """Find the node a pydantic error `loc` points at.

        In: `loc` from a pydantic error; `key=True` to point at the last key itself (for
        unknown keys) rather than at its value.
        Out: 1-based `(line, col)` of the deepest node reachable along `loc`: a missing
        key gives the mapping that lacks it; loc entries that are not keys of the
        current mapping (discriminated-union tags, pydantic type names) are skipped.
        """
        place = self.place(loc, error_type="extra_forbidden" if key else "")
        return place.line, place.col

    def place(self, loc: Loc, *, error_type: str = "") -> Place:
        """Like `locate`, also returning the loc to show (tags and type names dropped).

        In: `loc`, and the pydantic error type (`missing` keeps the absent key in the
        shown loc; `extra_forbidden` points at the key node).
        Out: a `Place`.
        """
        node = self.root
        mark_node = node
        shown: list[int | str] = []
        for index, element in enumerate(loc):
            last = index == len(loc) - 1
            child = _child(node, element)
            if child is None:
                if last and error_type in _MISSING_ERRORS:
                    shown.append(element)
                continue
            key_node, value_node = child
            shown.append(element)
            about_key = (last and error_type in _KEY_ERRORS) or loc[index + 1 : index + 2] == (
                "[key]",
            )
            at_key = about_key and key_node is not None
            mark_node = key_node if at_key else value_node
            node = value_node
        if mark_node is None:
            return Place(1, 1, tuple(shown))
        mark = mark_node.start_mark
        return Place(mark.line + 1, mark.column + 1, tuple(shown))


def _child(node: Node | None, element: int | str) -> tuple[Node | None, Node] | None:
    if isinstance(node, MappingNode):
        return _mapping_child(node, str(element))
    if isinstance(node, SequenceNode) and isinstance(element, int):
        items: list[Node] = node.value
        return (None, items[element]) if 0 <= element < len(items) else None
    return None


def _mapping_child(node: MappingNode, name: str) -> tuple[Node, Node] | None:
    for key_node, value_node in _pairs(node):
        if isinstance(key_node, ScalarNode) and key_node.value == name:
            return key_node, value_node
    return None


def _pairs(node: MappingNode) -> Iterator[tuple[Node, Node]]:
    """Key/value pairs, later keys first (they win), then those pulled in by `<<:`."""
    merges: list[Node] = []
    for key_node, value_node in reversed(node.value):
        if key_node.tag == _MERGE_TAG:
            merges.append(value_node)
        else:
            yield key_node, value_node
    for merged in merges:
        sources = merged.value if isinstance(merged, SequenceNode) else [merged]
        for source in sources:
            if isinstance(source, MappingNode):
                yield from _pairs(source)


def load_yaml(path: Path) -> YamlDoc:
    """Read and parse one YAML file (safe loader: plain dicts, lists and scalars).

    In: a path. Out: a `YamlDoc`; an empty file gives `data=None`, `root=None`.
    Raises: `ConfigError` for a missing or unreadable file (`path: no such file`), a
    syntax error (`path:line:col: problem`) or a key given twice in one mapping.
    """
    text = _read(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_error(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    duplicates = list(_duplicate_keys(path, root))
    if duplicates:
        raise ConfigError(duplicates)
    return YamlDoc(data=data, root=root)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _syntax_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "not valid YAML"
    if exc.context and exc.problem and exc.context_mark is not None:
        problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
    if mark is None:
        return f"{path}: {problem}"
    return f"{path}:{mark.line + 1}:{mark.column + 1}: {problem}"


def _duplicate_keys(path: Path, node: Node | None) -> Iterator[str]:
    seen: set[int] = set()
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, MappingNode):
            yield from _duplicates_in(path, current)
            stack.extend(value for pair in current.value for value in pair)
        elif isinstance(current, SequenceNode):
            stack.extend(current.value)


def _duplicates_in(path: Path, node: MappingNode) -> Iterator[str]:
    first: dict[str, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        mark = key_node.start_mark
        if key_node.value in first:
            yield (
                f"{path}:{mark.line + 1}:{mark.column + 1}: duplicate key "
                f"{key_node.value!r} (first at line {first[key_node.value]})"
            )
        else:
            first[key_node.value] = mark.line + 1


def format_loc(loc: Loc) -> str:
    """`('rules', 0, 'below', 'critical')` → `rules[0].below.critical`."""
    text = ""
    for element in loc:
        if isinstance(element, int):
            text += f"[{element}]"
        else:
            text += f".{element}" if text else str(element)
    return text


def error_message(error: Any) -> str:
    """The message of one pydantic error, without pydantic's `Value error, ` prefix."""
    message = str(error["msg"])
    for prefix in _MESSAGE_PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def format_error(path: Path | str, doc: YamlDoc, error: Any, prefix_loc: Loc = ()) -> str:
    """One pydantic error (an item of `exc.errors()`) as `path:line:col: loc: message`."""
    loc: Loc = tuple(prefix_loc) + tuple(error["loc"])
    place = doc.place(loc, error_type=str(error["type"]))
    shown = format_loc(place.loc)
    where = f"{path}:{place.line}:{place.col}"
    return (
        f"{where}: {shown}: {error_message(error)}" if shown else f"{where}: {error_message(error)}"
    )


def format_validation_errors(
    path: Path | str, doc: YamlDoc, exc: pydantic.ValidationError, prefix_loc: Loc = ()
) -> list[str]:
    """Every error of `exc`, each `path:line:col: dotted.loc: message`, in file order.

    In: the path to show, the `YamlDoc` the data came from, the error, and `prefix_loc`
    when the validated data was a part of the document (e.g. `('rules', 3)`).
    Out: one line per error, sorted by position. Input values are never included.
    """
    errors = exc.errors(include_url=False, include_input=False)
    placed = []
    for order, error in enumerate(errors):
        loc: Loc = tuple(prefix_loc) + tuple(error["loc"])
        place = doc.place(loc, error_type=error["type"])
        placed.append((place.line, place.col, order, format_error(path, doc, error, prefix_loc)))
    return [line for *_, line in sorted(placed)]
