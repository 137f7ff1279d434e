"""One pass over a YAML text: the data PyYAML's safe loader gives, and a table of marks.

The parser's events come from libyaml's C parser when PyYAML was built with it
(`yaml.CSafeLoader`), else from PyYAML's own; tags are resolved and scalars constructed
by PyYAML's safe resolver and constructors, so values are typed exactly as
`yaml.load(text, Loader=yaml.CSafeLoader)` (else `yaml.safe_load`) types them, merge keys
`<<` included. Composition is a loop over an explicit stack, never a recursion, and
stops at `MAX_DEPTH` levels with an error at the collection that is one too deep:
neither PyYAML's recursive composer (RecursionError) nor libyaml's (a crash of the
process) ever sees hostile nesting.

Marks are one flat table for the whole document instead of PyYAML's node tree (a node
object and two mark objects per scalar cost more than the data itself): per node, in
document order, its position, the size of its subtree, its kind and, for a scalar, its
text (the same string object the data holds) — about 21 bytes a node.
"""

from __future__ import annotations

from array import array
from types import GeneratorType
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

MAX_DEPTH = 100
"""Deepest nesting of mappings and sequences accepted (a config needs fewer than 10)."""

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE, _VALUE = (_TAG + name for name in ("str", "map", "seq", "merge", "value"))
_SET, _OMAP, _PAIRS = (_TAG + name for name in ("set", "omap", "pairs"))
_KEY_TAGS = frozenset({_STR, _MERGE, _VALUE})  # `<<` and `=` are read as keys only
_MAPPING_TAGS = frozenset({_MAP, _SET})
_SEQUENCE_TAGS = frozenset({_SEQ, _OMAP, _PAIRS})
_TOO_DEEP = (
    f"nested more than {MAX_DEPTH} levels deep; flatten the file (a config or rule file "
    "needs a few levels)"
)

_INTERN_UP_TO = 40
Duplicate = tuple[tuple[int, int], str, int]  # (line, col) 1-based, key, line of the first


def line_col(pos: int) -> tuple[int, int]:
    """A packed position as 1-based `(line, col)`."""
    return (pos >> 32) + 1, (pos & 0xFFFFFFFF) + 1


def _pos(mark: Any) -> int:
    return int(mark.line) << 32 | int(mark.column)


_SCALAR, _MAPPING, _SEQUENCE, _ALIAS, _MERGE_KEY = range(5)
_CACHE_FROM = 32  # collections with more children keep an index of them once asked


class Marks:
    """Where every node of a document is; node 0 is the root, children follow their
    parent (a mapping's as key, value, key, value…)."""

    __slots__ = ("_kids", "aliases", "kinds", "places", "sizes", "texts")

    def __init__(self) -> None:
        self.places = array("Q")  # line << 32 | column, 0-based
        self.sizes = array("L")  # nodes in the subtree, itself included
        self.kinds = bytearray()
        self.texts: list[str | None] = []  # a scalar's text, else None
        self.aliases: dict[int, int] = {}  # alias node -> the anchored node
        self._kids: dict[int, list[int]] = {}

    def add(self, kind: int, place: int, text: str | None = None) -> int:
        self.places.append(place)
        self.sizes.append(1)
        self.kinds.append(kind)
        self.texts.append(text)
        return len(self.kinds) - 1

    def close(self, node: int) -> None:
        self.sizes[node] = len(self.kinds) - node

    def target(self, node: int) -> int:
        """The node itself, or the anchored node an alias stands for."""
        return self.aliases.get(node, node)

    def kind(self, node: int) -> int:
        return self.kinds[self.target(node)]

    def children(self, node: int) -> list[int]:
        """Direct children of a collection (aliases as they are, not followed)."""
        cached = self._kids.get(node)
        if cached is not None:
            return cached
        out, child, end = [], node + 1, node + self.sizes[node]
        sizes = self.sizes
        while child < end:
            out.append(child)
            child += sizes[child]
        if len(out) > _CACHE_FROM:
            self._kids[node] = out
        return out

    def item(self, node: int, index: int) -> int | None:
        """The `index`-th item of a sequence node (aliases followed), or None."""
        node = self.target(node)
        if self.kinds[node] != _SEQUENCE:
            return None
        items = self.children(node)
        return self.target(items[index]) if 0 <= index < len(items) else None

    def find(self, node: int, name: str) -> tuple[int, int] | None:
        """`(key node, value node)` of key `name` in a mapping node, as the data has it:
        the last explicit key, else merged ones (later `<<:` first, each list in order).
        Iterative: a long chain of merges cannot exhaust the stack."""
        pending = [self.target(node)]
        seen: set[int] = set()
        while pending:
            mapping = pending.pop()
            if mapping in seen or self.kinds[mapping] != _MAPPING:
                continue
            seen.add(mapping)
            kids = self.children(mapping)
            merged: list[int] = []
            for index in range(len(kids) - 2, -1, -2):
                key, value = kids[index], kids[index + 1]
                if self.kinds[key] == _MERGE_KEY:
                    merged.append(self.target(value))
                elif self.texts[key] == name and self.kinds[key] == _SCALAR:
                    return key, self.target(value)
            sources: list[int] = []
            for source in merged:
                if self.kinds[source] == _SEQUENCE:
                    sources += [self.target(item) for item in self.children(source)]
                else:
                    sources.append(source)
            pending += reversed(sources)  # the first source is looked at first
        return None

    def place(self, node: int) -> tuple[int, int]:
        """1-based `(line, col)` of a node."""
        return line_col(self.places[node])


class _TooDeepError(ComposerError):
    pass


class _Frame:
    """A mapping or sequence being built: its data, its node, and for a mapping the key
    waiting for its value."""

    __slots__ = ("data", "first", "key", "mapping", "mark", "merges", "node", "tag")

    def __init__(self, data: Any, node: int, tag: str, mark: Any, mapping: bool) -> None:
        self.data = data
        self.node = node
        self.tag = tag
        self.mark = mark
        self.mapping = mapping
        self.key: Item | None = None
        self.first: dict[str, int] | None = None
        self.merges: list[list[Any]] | None = None


Item = tuple[Any, int, str | None, str | None, Any]  # data, node, raw text, tag, mark


class _Builder:
    def __init__(self, text: str | bytes) -> None:
        self.loader = _Loader(text)
        self.marks = Marks()
        self.anchors: dict[str, tuple[Any, int, Any]] = {}
        self.duplicates: list[Duplicate] = []
        self.strings: dict[str, str] = {}  # one object per short quoted text
        self.plain: dict[str, tuple[str, str, Any]] = {}  # text -> (text, tag, data)

    def document(self) -> Any:
        """The data of the single document of the stream (None when there is none)."""
        get = self.loader.get_event
        get()  # StreamStartEvent
        event = get()
        if isinstance(event, StreamEndEvent):
            return None
        if not isinstance(event, DocumentStartEvent):  # pragma: no cover - the parser's job
            raise ComposerError(None, None, "expected a document", event.start_mark)
        item = self.node()
        data, mark = _value(item), item[4]
        get()  # DocumentEndEvent
        event = get()
        if not isinstance(event, StreamEndEvent):
            raise ComposerError(
                "expected a single document in the stream",
                mark,
                "but found another document",
                event.start_mark,
            )
        return data

    def node(self) -> Item:
        """Compose and construct the node whose events come next, without recursion."""
        get = self.loader.get_event
        stack: list[_Frame] = []
        while True:
            event = get()
            kind = type(event)
            if kind is ScalarEvent:
                item = self.scalar(event, stack)
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                item = self.finish(stack.pop())
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if len(stack) >= MAX_DEPTH:
                    raise _TooDeepError(None, None, _TOO_DEEP, event.start_mark)
                stack.append(self.start(event, kind is MappingStartEvent))
                continue
            elif kind is AliasEvent:
                item = self.alias(event)
            else:  # pragma: no cover - the parser never sends anything else here
                raise ComposerError(None, None, "unexpected event", event.start_mark)
            if not stack:
                return item
            self.add(stack[-1], item)

    def anchor(self, event: Any, data: Any, node: int) -> None:
        name = event.anchor
        if name is None:
            return
        if name in self.anchors:
            raise ComposerError(
                f"found duplicate anchor {name!r}; first occurrence",
                self.anchors[name][2],
                "second occurrence",
                event.start_mark,
            )
        self.anchors[name] = (data, node, event.start_mark)

    def alias(self, event: Any) -> Item:
        found = self.anchors.get(event.anchor)
        if found is None:
            raise ComposerError(
                None, None, f"found undefined alias {event.anchor!r}", event.start_mark
            )
        data, target, mark = found
        node = self.marks.add(_ALIAS, self.marks.places[target])
        self.marks.aliases[node] = target
        return data, node, None, None, mark

    def scalar(self, event: Any, stack: list[_Frame]) -> Item:
        value, tag = event.value, event.tag
        untagged = tag is None or tag == "!"
        implicit = event.implicit
        if untagged and implicit[0] and len(value) <= _INTERN_UP_TO:
            known = self.plain.get(value)  # short plain scalars repeat: keys, numbers, words
            if known is None:
                tag = self.loader.resolve(ScalarNode, value, implicit)
                data = value if tag in _KEY_TAGS else self.construct(tag, event)
                known = self.plain[value] = (value, tag, data)  # all immutable
            value, tag, data = known
        else:
            if len(value) <= _INTERN_UP_TO:
                value = self.strings.setdefault(value, value)
            if untagged:
                tag = self.loader.resolve(ScalarNode, value, implicit)
            data = value if tag in _KEY_TAGS else self.construct(tag, event)
        is_key = bool(stack) and stack[-1].mapping and stack[-1].key is None
        kind = _MERGE_KEY if is_key and tag == _MERGE else _SCALAR
        node = self.marks.add(kind, _pos(event.start_mark), value)
        if event.anchor is not None:
            self.anchor(event, data, node)
        return data, node, value, tag, event.start_mark

    def construct(self, tag: str, event: Any) -> Any:
        """A scalar of any other tag, by PyYAML's safe constructor for it."""
        loader = self.loader
        constructors = loader.yaml_constructors
        constructor = constructors.get(tag, constructors.get(None))
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            result = constructor(loader, node)
            if isinstance(result, GeneratorType):  # a collection tag on a scalar: its error
                data = next(result)
                for _ in result:
                    pass
                return data
        except (ValueError, OverflowError, TypeError) as exc:
            short = tag.removeprefix(_TAG)
            raise ConstructorError(
                None, None, f"{event.value!r} is not a valid {short}: {exc}", event.start_mark
            ) from None
        return result

    def start(self, event: Any, mapping: bool) -> _Frame:
        kind = MappingNode if mapping else SequenceNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(kind, None, event.implicit)
        allowed = _MAPPING_TAGS if mapping else _SEQUENCE_TAGS
        if tag not in allowed:
            raise ConstructorError(
                None,
                None,
                f"could not determine a constructor for the tag {tag!r} on a "
                + ("mapping" if mapping else "sequence"),
                event.start_mark,
            )
        data: Any = set() if tag == _SET else {} if mapping else []
        node = self.marks.add(_MAPPING if mapping else _SEQUENCE, _pos(event.start_mark))
        self.anchor(event, data, node)
        return _Frame(data, node, tag, event.start_mark, mapping)

    def add(self, frame: _Frame, item: Item) -> None:
        if not frame.mapping:
            frame.data.append(_value(item))
            return
        if frame.key is None:
            frame.key = item
            return
        key, _, raw, tag, key_mark = frame.key
        frame.key = None
        if tag == _MERGE:
            self.merge(frame, item)
            return
        if tag == _VALUE:
            key = raw
        value = _value(item)
        if not _hashable(key):
            raise ConstructorError(
                "while constructing a mapping", frame.mark, "found unhashable key", key_mark
            )
        if raw is not None:
            self.check_duplicate(frame, raw, key_mark)
        if frame.tag == _SET:
            frame.data.add(key)
        else:
            frame.data[key] = value

    def check_duplicate(self, frame: _Frame, raw: str, mark: Any) -> None:
        if frame.first is None:
            frame.first = {}
        first = frame.first.get(raw)
        if first is None:
            frame.first[raw] = mark.line + 1
        else:
            self.duplicates.append(((mark.line + 1, mark.column + 1), raw, first))

    def merge(self, frame: _Frame, item: Item) -> None:
        """`<<: *base` or `<<: [*a, *b]`: sources kept to apply when the mapping ends."""
        data, node, _, _, mark = item
        marks = self.marks
        kind = marks.kind(node)
        if kind == _SEQUENCE:
            for child in marks.children(marks.target(node)):
                if marks.kind(child) != _MAPPING:
                    raise ConstructorError(
                        "while constructing a mapping",
                        frame.mark,
                        f"expected a mapping for merging, but found {_NAMES[marks.kind(child)]}",
                        mark,
                    )
            sources = list(data)
        elif kind == _MAPPING:
            sources = [data]
        else:
            raise ConstructorError(
                "while constructing a mapping",
                frame.mark,
                f"expected a mapping or list of mappings for merging, but found {_NAMES[kind]}",
                mark,
            )
        if frame.merges is None:
            frame.merges = []
        frame.merges.append(sources)

    def finish(self, frame: _Frame) -> Item:
        self.marks.close(frame.node)
        data = frame.data
        if frame.merges and isinstance(data, dict):
            explicit = dict(data)
            data.clear()
            for group in frame.merges:
                for source in reversed(group):
                    data.update(source)
            data.update(explicit)
        if frame.tag in (_OMAP, _PAIRS):
            data[:] = self.pairs(frame)
        return data, frame.node, None, None, frame.mark

    def pairs(self, frame: _Frame) -> list[tuple[Any, Any]]:
        out = []
        for entry, child in zip(frame.data, self.marks.children(frame.node), strict=True):
            if not isinstance(entry, dict) or len(entry) != 1:
                line, col = self.marks.place(child)
                raise ConstructorError(
                    None,
                    None,
                    f"expected a mapping of length 1 at line {line}, column {col}",
                    frame.mark,
                )
            out.append(next(iter(entry.items())))
        return out


_NAMES = {_SCALAR: "scalar", _MAPPING: "mapping", _SEQUENCE: "sequence", _MERGE_KEY: "scalar"}


def _value(item: Item) -> Any:
    """The data of a node in a value's place: `<<` and `=` are keys, not values."""
    if item[3] in (_MERGE, _VALUE):
        raise ConstructorError(
            None, None, f"could not determine a constructor for the tag {item[3]!r}", item[4]
        )
    return item[0]


def _hashable(key: Any) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


def build(text: str | bytes) -> tuple[Any, Marks | None, list[Duplicate]]:
    """Parse `text` once.

    In: the text of one YAML document, or its UTF-8 bytes (an empty text is no document).
    Out: `(data, marks, duplicates)`: data as PyYAML's safe loader gives it, the marks of
    every node (None when there is no document), and keys given twice in one mapping,
    in file order.
    Raises: `yaml.MarkedYAMLError` (syntax, undefined alias, more than one document,
    nesting deeper than `MAX_DEPTH`, a value its tag cannot read), `yaml.YAMLError`.
    """
    builder = _Builder(text)
    try:
        data = builder.document()
    finally:
        builder.loader.dispose()
    marks = builder.marks if builder.marks.kinds else None
    return data, marks, sorted(builder.duplicates)
