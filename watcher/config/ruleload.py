"""Load rule files: globs → validated rules, or every problem as `file:line:col: message`."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from watcher.config.yamlfile import ConfigError, YamlDoc, format_validation_errors, load_yaml
from watcher.core.rules import Rule, RuleFile


@dataclass(slots=True)
class LoadedRules:
    """Rules from every file, plus errors and warnings (each `file:line:col: message`)."""

    rules: list[Rule] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    locations: dict[str, str] = field(default_factory=dict)  # rule name -> file:line:col
    unmatched: list[str] = field(default_factory=list)  # globs that match no file
    docs: dict[Path, YamlDoc] = field(default_factory=dict)  # each file parsed once, kept


def unmatched_warning(pattern: str) -> str:
    return f"rules: pattern {pattern!r} matches no file"


def expand(patterns: Sequence[str], base_dir: Path) -> tuple[list[Path], list[str]]:
    """Expand globs relative to `base_dir`. Out: sorted unique files, globs matching none."""
    files: list[Path] = []
    unmatched: list[str] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
        matched = sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
        if not matched:
            unmatched.append(pattern)
        files += [p for p in matched if p not in files]
    return files, unmatched


def load_rules(patterns: Sequence[str], base_dir: Path) -> LoadedRules:
    """Load and validate every rule file the globs match.

    All problems of all files are collected (never raised): invalid YAML, schema errors,
    and rule names used twice.
    """
    out = LoadedRules()
    out.files, out.unmatched = expand(patterns, base_dir)
    out.warnings = [unmatched_warning(p) for p in out.unmatched]
    for path in out.files:
        for rule, where in _load_file(path, out):
            first = out.locations.get(rule.name)
            if first is not None:
                out.errors.append(f"{where}: rule name {rule.name!r} is already used at {first}")
                continue
            out.locations[rule.name] = where
            out.rules.append(rule)
    return out


def _load_file(path: Path, out: LoadedRules) -> list[tuple[Rule, str]]:
    errors = out.errors
    try:
        doc = load_yaml(path)
    except ConfigError as exc:
        errors.extend(exc.errors)
        return []
    out.docs[path] = doc
    if doc.data is None:
        return []
    if not isinstance(doc.data, dict):
        errors.append(f"{path}:1:1: a rule file is a mapping with a `rules:` list")
        return []
    try:
        parsed = RuleFile.model_validate(doc.data)
    except ValidationError as exc:
        errors.extend(format_validation_errors(path, doc, exc))
        return []
    located = []
    for index, rule in enumerate(parsed.rules):
        line, col = doc.locate(("rules", index))
        located.append((rule, f"{path}:{line}:{col}"))
    return located
