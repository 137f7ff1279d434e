"""No module of the package is longer than `MAX_LINES` lines (ISSUE 10: a module that
grows past it is split by concern)."""

from __future__ import annotations

from pathlib import Path

import watcher

PACKAGE_DIR = Path(watcher.__file__).parent
MAX_LINES = 500

_STILL_TOO_LONG: frozenset[str] = frozenset()  # kept empty: split a module instead


def line_counts(root: Path) -> dict[str, int]:
    """Lines per module, by path relative to the package's parent."""
    return {
        str(path.relative_to(root.parent)): len(path.read_text().splitlines())
        for path in sorted(root.rglob("*.py"))
    }


def too_long(counts: dict[str, int], allowed: frozenset[str] = frozenset()) -> list[str]:
    return [
        f"{name}: {lines} lines (at most {MAX_LINES})"
        for name, lines in counts.items()
        if lines > MAX_LINES and name not in allowed
    ]


def test_no_module_is_longer_than_500_lines() -> None:
    found = too_long(line_counts(PACKAGE_DIR), _STILL_TOO_LONG)
    assert found == [], "\n".join(found)


def test_a_long_module_is_named(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "short.py").write_text("x = 1\n" * MAX_LINES)
    (root / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert too_long(line_counts(root)) == ["pkg/long.py: 501 lines (at most 500)"]
