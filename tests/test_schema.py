"""`account-watcher schema`: the JSON Schema of rule files, and the files it describes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import REPO, run_cli

from watcher.config.schema import DRAFT, SCHEMA_ID, rule_file_schema, schema_text
from watcher.core.rules import (
    AuditRule,
    BalanceRule,
    ForecastRule,
    InvoiceRule,
    WebhookFailuresRule,
)

RULES_DIR = REPO / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yaml"))


@pytest.fixture(scope="module")
def printed() -> dict[str, Any]:
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    schema: dict[str, Any] = json.loads(result.stdout)
    return schema


def test_printed_schema_is_draft_2020_12_with_an_id(printed: dict[str, Any]) -> None:
    assert printed["$schema"] == DRAFT == "https://json-schema.org/draft/2020-12/schema"
    assert printed["$id"] == SCHEMA_ID
    jsonschema.Draft202012Validator.check_schema(printed)


def test_committed_schema_matches_the_printed_one() -> None:
    committed = (RULES_DIR / "schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), (
        "rules/schema.json is stale: run `account-watcher schema > rules/schema.json`"
    )


def test_there_are_example_rule_files_of_every_kind() -> None:
    kinds = {
        rule["kind"]
        for path in RULE_FILES
        for rule in yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]
    }
    assert kinds == {
        "balance",
        "forecast",
        "audit",
        "webhook_failures",
        "invoice",
        "drift",
        "spend",
    }


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_example_rule_file_validates_and_names_the_schema(
    path: Path, printed: dict[str, Any]
) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=schema.json"
    jsonschema.Draft202012Validator(printed).validate(yaml.safe_load(text))


def _properties(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for model_name, model in schema["$defs"].items():
        for key, prop in model.get("properties", {}).items():
            yield f"{model_name}.{key}", prop
    for key, prop in schema["properties"].items():
        yield f"RuleFile.{key}", prop


def test_every_key_has_a_description_and_examples(printed: dict[str, Any]) -> None:
    missing = [
        name
        for name, prop in _properties(printed)
        if not prop.get("description") or not prop.get("examples")
    ]
    assert missing == []


def test_examples_in_the_schema_are_valid_values(printed: dict[str, Any]) -> None:
    for name, prop in _properties(printed):
        if name.endswith(".kind"):
            continue
        for example in prop["examples"]:
            jsonschema.Draft202012Validator({**prop, "$defs": printed["$defs"]}).validate(example)


@pytest.mark.parametrize(
    ("model", "placeholder"),
    [
        (BalanceRule, "{clear_at}"),
        (ForecastRule, "{burn_rate}"),
        (AuditRule, "{count}"),
        (WebhookFailuresRule, "{ratio}"),
        (InvoiceRule, "{invoice_id}"),
    ],
)
def test_summary_description_lists_the_kinds_placeholders(model: type, placeholder: str) -> None:
    summary = rule_file_schema()["$defs"][model.__name__]["properties"]["summary"]
    assert placeholder in summary["description"]
    assert "{account}" in summary["description"]


def test_durations_show_as_operators_write_them(printed: dict[str, Any]) -> None:
    forecast = printed["$defs"]["ForecastRule"]["properties"]
    assert forecast["lookback"]["default"] == "6h"
    assert forecast["floor"]["default"] == 0
    assert printed["$defs"]["BalanceRule"]["properties"]["for"]["default"] == "0s"


@pytest.mark.parametrize(
    "rule",
    [
        {"name": "x", "kind": "balance", "below": 10, "colour": "red"},
        {"name": "x", "kind": "nope"},
        {"name": "Bad Name", "kind": "audit"},
        {"name": "x", "kind": "audit", "match": {"who": "me"}},
        {"name": "x", "kind": "forecast"},
        {"name": "x", "kind": "webhook_failures", "group_by": "colour"},
    ],
)
def test_schema_rejects_what_check_rejects(rule: dict[str, Any], printed: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(printed).validate({"rules": [rule]})
