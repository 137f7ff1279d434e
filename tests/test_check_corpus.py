"""The broken-file corpus: every file under tests/check_corpus/ through the real `check`.

`NN-name.yaml` is a rule file (checked with a fixed config beside it) unless its name
holds `-config-`, then it is the config file itself. `NN-name.expected` holds the exact
stderr of `check`, with the temporary directory written as `{dir}`. A case whose
expected lines are all warnings must exit 0, any other case 1. Nothing may crash.

To regenerate after a deliberate message change, run with `UPDATE_CHECK_CORPUS=1` and
review the diff.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import API_KEY
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.cli.check import cmd_check
from watcher.config.rulecheck import reference_errors, rule_warnings
from watcher.config.ruleload import load_rules

CORPUS = Path(__file__).parent / "check_corpus"
CASES = sorted(CORPUS.glob("*.yaml"))
CONFIG = """\
accounts:
  - name: main
  - name: backup
poll:
  interval: 1m
rules: [{rules}]
notify:
  default_route: ops
  routes:
    ops: {{urls: ["json://127.0.0.1:9/hook"]}}
    billing: {{urls: ["json://127.0.0.1:9/billing"], min_severity: warning}}
"""


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WATCHER_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)
    monkeypatch.setenv("TELNYX_API_KEY", API_KEY)


def run_check(case: Path, tmp_path: Path) -> tuple[int, list[str], str]:
    target = tmp_path / case.name
    shutil.copyfile(case, target)
    if "-config-" in case.name:
        config = target
    else:
        config = tmp_path / "config.yaml"
        config.write_text(CONFIG.format(rules=case.name))
    out, err = io.StringIO(), io.StringIO()
    code = cmd_check(config, out, err)
    lines = err.getvalue().replace(str(tmp_path), "{dir}").splitlines()
    return code, lines, out.getvalue()


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert sum("-config-" in case.name for case in CASES) >= 5


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_check_output_is_exactly_as_expected(case: Path, tmp_path: Path) -> None:
    code, lines, out = run_check(case, tmp_path)
    expected_path = case.with_suffix(".expected")
    if os.environ.get("UPDATE_CHECK_CORPUS") == "1":
        expected_path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    expected = expected_path.read_text(encoding="utf-8").splitlines()
    assert lines == expected
    assert lines, "every corpus case must report something"
    only_warnings = all(line.startswith("warning: ") for line in lines)
    assert code == (0 if only_warnings else 1)
    assert (out.startswith("ok: ")) == only_warnings
    assert "Traceback" not in "\n".join(lines)
    assert "NOTREALLYSECRET" not in "\n".join(lines)  # a literal key is never echoed


@pytest.mark.usefixtures("clean_env")
def test_every_error_names_the_file_and_a_line(tmp_path: Path) -> None:
    for case in CASES:
        _, lines, _ = run_check(case, tmp_path)
        for line in lines:
            text = line.removeprefix("warning: ")
            if text.startswith(("{dir}/", "rules: pattern")):
                assert text.startswith(("{dir}/" + case.name, "rules: pattern")), line
            if not line.startswith("warning: "):
                assert text.startswith(f"{{dir}}/{case.name}:"), line


YAMLISH = st.text(alphabet=st.sampled_from(list("rules:-nameki dbelow{}[],'\"\n\t5m#&*!|>%@`")))


@settings(max_examples=300, deadline=None)
@given(text=YAMLISH)
def test_no_input_crashes_the_rule_loader(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(text, encoding="utf-8")
        found = load_rules(["rules.yaml"], Path(tmp))
        rule_warnings(found, timedelta(minutes=1), datetime.now(UTC))
        reference_errors(found, {"ops"}, {"main"})
        assert all(line.startswith(str(path)) for line in found.errors)
