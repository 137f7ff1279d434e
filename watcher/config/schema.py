"""The JSON Schema (draft 2020-12) of rule files, for editors: `account-watcher schema`.

Generated from the same pydantic models that validate rule files (`watcher.core.rules`), so
it cannot drift from what `check` accepts. Each kind's `summary` description lists the
placeholders that kind knows.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any, get_args

from pydantic.json_schema import GenerateJsonSchema

from watcher.core.durations import duration_text
from watcher.core.rules import COMMON_PLACEHOLDERS, Rule, RuleFile

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:account-watcher:rule-file"
KINDS: tuple[Any, ...] = get_args(get_args(Rule)[0])
"""Every rule kind's model, from the `Rule` union (a new kind needs no edit here)."""


class _Generator(GenerateJsonSchema):
    """Defaults as operators write them: `5m` rather than `PT5M`, `0` rather than `"0"`."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return duration_text(dft)
        if isinstance(dft, Decimal):
            return int(dft) if dft == dft.to_integral_value() else float(dft)
        return super().encode_default(dft)


def rule_file_schema() -> dict[str, Any]:
    """The schema as a dict: `$schema`, `$id`, and every key described with examples."""
    schema = RuleFile.model_json_schema(schema_generator=_Generator)
    defs = schema.get("$defs", {})
    for model in KINDS:
        summary = defs[model.__name__]["properties"]["summary"]
        summary["description"] = summary_description(model.placeholders)
    return {"$schema": DRAFT, "$id": SCHEMA_ID, **schema}


def summary_description(placeholders: dict[str, str] | Any) -> str:
    """Describe `summary` with the placeholders one kind knows."""
    names = ", ".join(f"{{{name}}}" for name in placeholders)
    common = ", ".join(f"{{{name}}}" for name in COMMON_PLACEHOLDERS)
    return (
        "first line of the message, a template with {placeholders} (names only, no "
        f"attribute access). This kind knows: {names}. Always known: {common}. An "
        "unknown placeholder is an error."
    )


def schema_text() -> str:
    """The schema as printed by `account-watcher schema` (stable, ends with a newline)."""
    return json.dumps(rule_file_schema(), indent=2, ensure_ascii=False) + "\n"
