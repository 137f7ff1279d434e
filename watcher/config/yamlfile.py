"""YAML files with line numbers, so that every config error names `file:line:col`.

`load_yaml` parses a file once: the parser's events (libyaml's C parser where PyYAML has
it, else PyYAML's own) are composed without recursion into both the plain data (as
PyYAML's safe loader would give it) and a compact table of marks, which locates pydantic
errors (they carry a `loc` path but never a line). Nesting deeper than `MAX_DEPTH`, a
key given twice in one mapping and a value that cannot be read are errors with a place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml

from watcher.config.yamlbuild import MAX_DEPTH, Marks, build

__all__ = ["MAX_DEPTH", "ConfigError", "Place", "YamlDoc", "load_yaml"]

Loc = tuple[int | str, ...]

_KEY_ERRORS = frozenset({"extra_forbidden"})
_MISSING_ERRORS = frozenset({"missing", "missing_keyword_argument"})
_MESSAGE_PREFIXES = ("Value error, ", "Assertion failed, ")
_PARSER_ERRORS = (yaml.scanner.ScannerError, yaml.parser.ParserError)


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
    """A parsed YAML file: plain `data` and the `root` of its marks (None when empty)."""

    data: Any
    root: Marks | None

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
        marks = self.root
        if marks is None:
            return Place(1, 1, ())
        node, mark = 0, 0
        shown: list[int | str] = []
        for index, element in enumerate(loc):
            last = index == len(loc) - 1
            child = _child(marks, node, element)
            if child is None:
                if last and error_type in _MISSING_ERRORS:
                    shown.append(element)
                continue
            key_node, value_node = child
            shown.append(element)
            about_key = (last and error_type in _KEY_ERRORS) or loc[index + 1 : index + 2] == (
                "[key]",
            )
            mark = key_node if about_key and key_node is not None else value_node
            node = value_node
        line, col = marks.place(mark)
        return Place(line, col, tuple(shown))


def _child(marks: Marks, node: int, element: int | str) -> tuple[int | None, int] | None:
    if isinstance(element, int):
        item = marks.item(node, element)
        if item is not None:
            return None, item
    return marks.find(node, str(element))


def load_yaml(path: Path) -> YamlDoc:
    """Read and parse one YAML file (safe types only: dicts, lists and scalars).

    In: a path. Out: a `YamlDoc`; an empty file gives `data=None`, `root=None`.
    Raises: `ConfigError` for a missing or unreadable file (`path: no such file`), a
    syntax error (`path:line:col: problem`), nesting deeper than `MAX_DEPTH`, a value
    that cannot be read, or keys given twice in one mapping (each at its place).
    """
    text = _read(path)
    try:
        data, root, duplicates = build(text)
    except _PARSER_ERRORS as exc:
        raise ConfigError(_syntax_error(path, _python_error(text) or exc)) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_error(path, exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if duplicates:
        raise ConfigError(
            [
                f"{path}:{line}:{col}: duplicate key {key!r} (first at line {first})"
                for (line, col), key, first in duplicates
            ]
        )
    return YamlDoc(data=data, root=root)


def _python_error(text: bytes) -> yaml.MarkedYAMLError | None:
    """The same syntax error as PyYAML's own parser words it (the messages users know).

    Only on the error path; the pure-Python parser is not recursive, so any input is safe.
    """
    loader: Any = yaml.SafeLoader(text)
    try:
        while loader.get_event() is not None and loader.check_event():
            pass
    except yaml.MarkedYAMLError as exc:
        return exc
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return None


def _read(path: Path) -> bytes:
    """The file's bytes, once known to be UTF-8 (the parser reads the bytes themselves:
    no second copy of a large file)."""
    try:
        raw = path.read_bytes()
        raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return raw


def _syntax_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "not valid YAML"
    if exc.context and exc.problem and exc.context_mark is not None:
        problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
    if mark is None:
        return f"{path}: {problem}"
    return f"{path}:{mark.line + 1}:{mark.column + 1}: {problem}"


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
