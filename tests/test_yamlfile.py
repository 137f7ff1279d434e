"""The one YAML loader (`watcher.config.yamlfile.load_yaml`): data as PyYAML's safe loader gives it,
marks for every node, duplicate keys, and hostile nesting turned into a `file:line`
error — for config files, rule files and `test` files, in `check`, `test` and a SIGHUP
reload of the running daemon."""

from __future__ import annotations

import re
import signal
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import Receiver, run_cli, wait_for, write_config
from hypothesis import given, settings
from hypothesis import strategies as st
from notify_socket import Listener, listening
from test_service import LOW_CREDIT, _start, _stop

from watcher.config import yamlbuild
from watcher.config.rulecheck import rule_warnings
from watcher.config.ruleload import load_rules
from watcher.config.yamlfile import MAX_DEPTH, ConfigError, load_yaml
from watcher.providers.telnyx.sim import SimServer

DEEP = 5_000


def deep_flow(levels: int) -> str:
    return "rules: " + "[" * levels + "]" * levels + "\n"


def deep_block(levels: int) -> str:
    return "".join(f"{' ' * i}k{i}:\n" for i in range(levels)) + " " * levels + "x: 1\n"


def deep_mapping(levels: int) -> str:
    return "a: " + "{a: " * levels + "1" + "}" * levels + "\n"


@pytest.fixture
def listener() -> Iterator[Listener]:
    with listening() as state:
        yield state


# ---------------------------------------------------------------------------- nesting


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (deep_flow(DEEP), 1),
        (deep_flow(200_000), 1),  # deep enough to overflow a recursive C composer
        (deep_mapping(DEEP), 1),
        (deep_block(DEEP), MAX_DEPTH + 1),
    ],
    ids=["flow-5000", "flow-200000", "mapping-5000", "block-5000"],
)
def test_deep_nesting_is_a_config_error_with_a_place(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    (error,) = caught.value.errors
    assert re.fullmatch(
        rf"{re.escape(str(path))}:{line}:\d+: nested more than {MAX_DEPTH} levels deep; "
        r"flatten the file \(a config or rule file needs a few levels\)",
        error,
    ), error


def test_nesting_up_to_the_limit_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n")
    doc = load_yaml(path)
    depth, value = 0, doc.data["a"]
    while value:
        depth, value = depth + 1, value[0]
    assert depth == MAX_DEPTH - 2


def test_check_names_the_deep_config_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(deep_mapping(DEEP))
    done = run_cli("--config", str(config), "check")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
    assert done.stderr.startswith(f"{config}:1:")


def test_check_names_the_deep_rule_file_and_exits_1(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", ["json://127.0.0.1:9/"], LOW_CREDIT)
    rule_file = tmp_path / "rules" / "deep.yaml"
    rule_file.write_text(deep_flow(DEEP))
    done = run_cli("--config", str(config), "check")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert [line for line in lines if "nested more than" in line] == [
        f"{rule_file}:1:{MAX_DEPTH + 7}: nested more than {MAX_DEPTH} levels deep; flatten the "
        "file (a config or rule file needs a few levels)"
    ]


def test_test_command_names_the_deep_test_file(tmp_path: Path) -> None:
    spec = tmp_path / "deep_test.yaml"
    spec.write_text("rule_files: []\ntests: " + "[" * DEEP + "]" * DEEP + "\n")
    done = run_cli("test", str(spec))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert f"{spec}:2:" in done.stdout


def test_sighup_with_a_deep_rule_file_is_a_one_line_reload_failure(
    tmp_path: Path, sim: SimServer, receiver: Receiver, listener: Listener
) -> None:
    config = write_config(
        tmp_path, sim.base_url, [receiver.url], LOW_CREDIT, interval="1s", timeout="1s"
    )
    rule_file = tmp_path / "rules" / "rules.yaml"
    process = _start(config, listener)
    try:
        listener.wait(lambda: len(listener.statuses()) >= 2)
        rule_file.write_text(deep_flow(DEEP))
        hup = time.monotonic()
        process.send_signal(signal.SIGHUP)
        listener.wait(lambda: [d for d in listener.after(hup) if "READY" in d.fields])
        wait_for(lambda: "reload failed" in listener.statuses()[-1])
        assert process.poll() is None
    finally:
        code, lines = _stop(process)
    assert code == 0
    assert not [line for line in lines if line["event"] == "config.reload_crashed"]
    (failed,) = [line for line in lines if line["event"] == "config.reload_failed"]
    assert failed["errors"] == [
        f"{rule_file}:1:{MAX_DEPTH + 7}: nested more than {MAX_DEPTH} levels deep; flatten the "
        "file (a config or rule file needs a few levels)"
    ]
    assert "exception" not in failed


# ---------------------------------------------------------------------------- one parse

SAMPLES = [
    "",
    "# only a comment\n",
    "a: 1\nb: [1, 2.5, 0x1f, 0o17, true, no, null, ~, '', .inf]\n",
    "when: 2026-11-23\nat: 2026-11-23T12:00:00Z\ntext: |\n  two\n  lines\n",
    "base: &base {x: 1, y: 2}\nderived:\n  <<: *base\n  y: 3\nlist: [*base, *base]\n",
    "multi:\n  <<: [{a: 1}, {b: 2}]\n  c: 3\n",
    "tagged: !!str 123\nnumber: !!float 1\nset: !!set {a, b}\nbin: !!binary aGk=\n",
    "- a\n- {b: c}\n- [d, [e, {f: g}]]\n",
    "plain scalar\n",
    "rules:\n  - name: x\n    kind: balance\n    below: {warning: 100, critical: 50}\n",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_data_is_what_safe_load_gives(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sample.yaml"
    path.write_text(text)
    assert load_yaml(path).data == yaml.safe_load(text)


def test_timestamps_and_dates_are_typed_as_safe_load_types_them(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("d: 2026-11-23\nt: 2026-11-23T12:00:00Z\n")
    data = load_yaml(path).data
    assert data == {"d": date(2026, 11, 23), "t": datetime(2026, 11, 23, 12, tzinfo=UTC)}


def test_marks_point_at_keys_values_and_merged_keys(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "base: &base\n  x: 1\nrules:\n  - name: a\n    below: {warning: 1}\n  - <<: *base\n"
    )
    doc = load_yaml(path)
    assert doc.locate(("rules", 0, "below", "warning")) == (5, 22)
    assert doc.locate(("rules", 0, "below"), key=True) == (5, 5)
    assert doc.locate(("rules", 1, "x")) == (2, 6)  # pulled in by `<<:`
    assert doc.locate(("rules", 7)) == (4, 3)  # no such item: the list itself
    assert doc.locate(()) == (1, 1)


def test_duplicate_keys_are_found_at_every_depth_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("a: 1\nb:\n  - {x: 1, x: 2}\na: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    assert caught.value.errors == [
        f"{path}:3:12: duplicate key 'x' (first at line 3)",
        f"{path}:4:1: duplicate key 'a' (first at line 1)",
    ]


def test_syntax_error_keeps_its_place(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    (error,) = caught.value.errors
    assert error.startswith(f"{path}:")
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: ", error)


def test_several_documents_are_one_error(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("a: 1\n---\nb: 2\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    (error,) = caught.value.errors
    assert error == (
        f"{path}:2:1: but found another document (expected a single document in the "
        "stream at line 1)"
    )


def test_the_c_parser_is_used_where_pyyaml_has_it() -> None:
    if yaml.__with_libyaml__:
        assert yamlbuild._Loader is yaml.CSafeLoader
    else:  # pragma: no cover - a PyYAML built without libyaml
        assert yamlbuild._Loader is yaml.SafeLoader


def test_check_reads_each_rule_file_once(tmp_path: Path) -> None:
    """Warnings are placed from the document `load_rules` parsed: the file is not read
    again (here it is gone by then, and the warning still points at the key)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: slow\n    kind: balance\n    below: 10\n    for: 90s\n")
    found = load_rules(["rules.yaml"], tmp_path)
    rules.unlink()
    warnings = rule_warnings(found, timedelta(minutes=1), datetime.now(UTC))
    assert warnings == [
        f"{rules}:5:10: rules[0].for: 1m30s is not a multiple of poll.interval (1m): the "
        "condition is seen once per poll, so it takes effect as 2m"
    ]


def test_a_value_its_tag_cannot_read_is_an_error_with_a_place(tmp_path: Path) -> None:
    path = tmp_path / "bad-date.yaml"
    path.write_text("poll:\n  since: 2026-13-45\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    assert caught.value.errors == [
        f"{path}:2:10: '2026-13-45' is not a valid timestamp: month must be in 1..12"
    ]


_PIECES = [*"ab1.0-: \n[]{},&*!<=?~#'\"x|>", "<<", "!!set ", "&a ", "*a", "\n  ", "- "]
YAMLISH = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=YAMLISH)
def test_same_data_as_the_safe_loader_or_an_error_with_a_place(text: str) -> None:
    try:  # the same parser's own safe loader (libyaml and PyYAML differ on a few edges)
        expected, readable = yaml.load(text, Loader=yamlbuild._Loader), True  # noqa: S506 (a SafeLoader)
    except (yaml.YAMLError, ValueError, TypeError):
        expected, readable = None, False
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            got = load_yaml(path).data
        except ConfigError as exc:
            assert all(line.startswith(f"{path}") for line in exc.errors)
            assert not readable or all("duplicate key" in line for line in exc.errors), text
            return
    assert readable, text
    assert got == expected or repr(got) == repr(expected), text


def test_a_long_chain_of_merges_is_located_without_recursion(tmp_path: Path) -> None:
    links = 3_000
    lines = ["m0: &m0 {deep: 1}"]
    lines += [f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: {i}}}" for i in range(1, links)]
    lines.append(f"top: {{<<: *m{links - 1}}}")
    path = tmp_path / "chain.yaml"
    path.write_text("\n".join(lines) + "\n")
    doc = load_yaml(path)
    assert doc.data["top"]["deep"] == 1
    assert doc.locate(("top", "deep")) == (1, 16)
