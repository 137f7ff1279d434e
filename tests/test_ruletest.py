"""`account-watcher test`: rule unit tests with a simulated clock."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import REPO, cli_env, run_cli

from watcher.cli.ruletest import cmd_test, diff_lines
from watcher.cli.ruletest_input import parse_series

D = Decimal


def run(tmp_path: Path, spec: str, rules: str | None = None) -> tuple[int, str]:
    """Write a test file (and optionally `rules.yaml` beside it), run it, return (code, out)."""
    if rules is not None:
        (tmp_path / "rules.yaml").write_text(textwrap.dedent(rules))
    path = tmp_path / "test.yaml"
    path.write_text(textwrap.dedent(spec))
    out = io.StringIO()
    code = cmd_test([path], out)
    return code, out.getvalue().replace(str(tmp_path), "TMP")


LOW = """\
    rules:
      - name: low
        kind: balance
        below: {warning: 100, critical: 50}
        topup: true
"""


def test_shipped_rule_tests_pass() -> None:
    tests = sorted(str(p.relative_to(REPO)) for p in (REPO / "rules" / "tests").glob("*.yaml"))
    assert len(tests) >= 4
    result = run_cli("test", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("SUCCESS: ")
    assert " 0 failed" in result.stdout


def test_broken_expectations_fail_with_a_readable_diff(tmp_path: Path) -> None:
    spec = f"""\
        rule_files: [{REPO / "rules" / "balance.yaml"}]
        evaluation_interval: 1m
        tests:
          - name: wrong on purpose
            balance: {{available_credit: "95 95 95 95 95 95 40"}}
            expect:
              - at: 5m
                alerts: [{{rule: low-credit, state: firing, severity: critical}}]
                notifications: ["[WARNING] low-credit firing — main"]
              - at: 6m
                notifications: []
                topups: [low-credit]
    """
    code, out = run(tmp_path, spec)
    assert code == 1
    assert out.splitlines() == [
        "FAIL TMP/test.yaml: wrong on purpose",
        "  at 5m (2026-01-05 00:05 UTC):",
        "    alerts (- expected, + got):",
        "      - firing critical low-credit/main",
        "      + firing warning low-credit/main",
        "  at 6m (2026-01-05 00:06 UTC):",
        "    notifications (- expected, + got):",
        "      + [CRITICAL] low-credit escalated to critical — main",
        "    top-ups (- expected, + got):",
        "      - low-credit/main",
        "FAILED: 0 passed, 1 failed",
    ]


def test_cli_exit_code_is_1_on_failure(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(LOW))
    (tmp_path / "t.yaml").write_text(
        "rule_files: [rules.yaml]\n"
        "tests:\n"
        "  - name: n\n"
        "    balance: {available_credit: 80}\n"
        "    expect: [{at: 0s, alerts: []}]\n"
    )
    result = run_cli("test", str(tmp_path / "t.yaml"))
    assert result.returncode == 1
    assert "      + firing warning low/main" in result.stdout
    assert "Traceback" not in result.stderr


def test_topups_are_reported_when_a_topup_rule_fires_at_critical(tmp_path: Path) -> None:
    spec = """\
        rule_files: [rules.yaml]
        tests:
          - name: top-up intents
            balance: {available_credit: "120 80 40 40 120 30"}
            expect:
              - {at: 1m, topups: [], notifications: ["[WARNING] low firing — main"]}
              - {at: 2m, topups: [low]}
              - {at: 3m, topups: []}
              - {at: 5m, topups: [{rule: low, account: main}]}
    """
    code, out = run(tmp_path, spec, LOW)
    assert (code, out) == (0, "ok   TMP/test.yaml: 1 test(s)\nSUCCESS: 1 passed, 0 failed\n")


def test_muted_rule_notifications_are_listed_apart(tmp_path: Path) -> None:
    rules = """\
        rules:
          - name: low
            kind: balance
            below: 100
            mute: ["Mon 00:00-00:03 UTC"]
    """
    spec = """\
        rule_files: [rules.yaml]
        tests:
          - name: quiet for three minutes
            start: 2026-01-05T00:00:00Z
            repeat_interval: 2m
            balance: {available_credit: 50}
            expect:
              - {at: 0s, notifications: [], muted: ["[WARNING] low firing — main"]}
              - {at: 2m, notifications: [], muted: ["[WARNING] low still firing (2m) — main"]}
              - {at: 4m, notifications: ["[WARNING] low still firing (4m) — main"], muted: []}
    """
    code, out = run(tmp_path, spec, rules)
    assert code == 0, out


def test_forecast_sees_only_its_lookback(tmp_path: Path) -> None:
    rules = """\
        rules:
          - name: runway
            kind: forecast
            runs_out_within: 10h
            lookback: 1h
            min_samples: 3
    """
    spec = """\
        rule_files: [rules.yaml]
        evaluation_interval: 10m
        tests:
          - name: an old steep fall is forgotten
            balance: {available_credit: "1000 400 399 398 397 396 395 394 393 392"}
            expect:
              - {at: 1h, alerts: [{rule: runway, state: firing, severity: warning}]}
              - {at: 1h10m, alerts: [{rule: runway, state: resolved}]}
    """
    code, out = run(tmp_path, spec, rules)
    assert code == 0, out


def test_invalid_test_file_is_reported_with_places(tmp_path: Path) -> None:
    spec = """\
        rule_files: [rules.yaml]
        tests:
          - name: bad
            balance: {available_credit: "100 abc"}
            colour: red
            expect:
              - {at: 1m, alerts: [{rule: low, state: burning}]}
    """
    code, out = run(tmp_path, spec, LOW)
    assert code == 1
    assert out.splitlines() == [
        "FAIL TMP/test.yaml: the test file is not valid",
        "TMP/test.yaml:4:33: tests[0].balance.available_credit: 'abc' is not "
        "a value; use numbers, `_` for a failed request, `_xN`, or `A+BxN` / `A-BxN`",
        "TMP/test.yaml:5:5: tests[0].colour: Extra inputs are not permitted",
        "TMP/test.yaml:7:46: tests[0].expect[0].alerts[0].state: Input should be "
        "'pending', 'firing' or 'resolved'",
        "FAILED: 0 passed, 1 failed",
    ]


def test_broken_rule_file_and_missing_files_fail_without_traceback(tmp_path: Path) -> None:
    spec = "rule_files: [rules.yaml, nothing-*.yaml]\ntests: [{name: n, expect: [{at: 0s}]}]\n"
    code, out = run(tmp_path, spec, "rules:\n  - name: low\n    kind: balance\n")
    assert code == 1
    assert out.splitlines() == [
        "FAIL TMP/test.yaml: the rule files are not valid",
        "TMP/rules.yaml:2:5: rules[0]: give exactly one of `below` or `above`",
        "rules: pattern 'nothing-*.yaml' matches no file",
        "FAILED: 0 passed, 1 failed",
    ]
    out_missing = io.StringIO()
    assert cmd_test([tmp_path / "absent.yaml"], out_missing) == 1
    assert "absent.yaml: no such file" in out_missing.getvalue()


def test_expectation_between_evaluations_is_an_error(tmp_path: Path) -> None:
    spec = """\
        rule_files: [rules.yaml]
        evaluation_interval: 1m
        tests:
          - {name: n, balance: {available_credit: 80}, expect: [{at: 90s, alerts: []}]}
    """
    code, out = run(tmp_path, spec, LOW)
    assert code == 1
    assert "  expect at 1m 30s: not a multiple of the interval 1m" in out.splitlines()


def test_alert_without_severity_matches_any(tmp_path: Path) -> None:
    spec = """\
        rule_files: [rules.yaml]
        tests:
          - name: n
            balance: {available_credit: "80 40"}
            expect:
              - {at: 1m, alerts: [{rule: low, state: firing}]}
              - {at: 1m, alerts: [{rule: low, state: pending}]}
    """
    code, out = run(tmp_path, spec, LOW)
    assert code == 1
    assert "      - pending (any severity) low/main" in out.splitlines()
    assert "      + firing critical low/main" in out.splitlines()


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("120 100 80", [D(120), D(100), D(80)]),
        ("1.5 _ x 2", [D("1.5"), None, None, D(2)]),
        ("100-10x3", [D(100), D(90), D(80), D(70)]),
        ("-5+2.5x2", [D(-5), D("-2.5"), D(0)]),
        ("_x3 7", [None, None, None, D(7)]),
        (42, [D(42)]),
        ([1, "_", 2], [D(1), None, D(2)]),
    ],
)
def test_parse_series(text: str | int | list[object], values: list[Decimal | None]) -> None:
    assert list(parse_series(text)) == values


@pytest.mark.parametrize("text", ["", "12abc", "1e5", "--1", "100x3", True])
def test_parse_series_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a value|empty|not a series"):
        parse_series(text)


def test_diff_lines_marks_both_sides() -> None:
    assert diff_lines(["a", "b"], ["b", "a"]) is None
    assert diff_lines(["a", "b", "b"], ["b", "c"]) == ["- a", "  b", "- b", "+ c"]
    assert diff_lines(["a"], []) == ["- a"]


# ---------------------------------------------------------------------------- bounded input

MEASURE = """\
import resource, subprocess, sys
limit = 1 << 30  # a safety net: without it an eager expansion would take the machine
def cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
child = subprocess.run(
    [sys.executable, "-m", "watcher", "test", *sys.argv[1:]],
    preexec_fn=cap, capture_output=True, text=True, timeout=120,
)
sys.stdout.write(child.stdout)
sys.stderr.write(child.stderr)
print(f"rc={child.returncode} maxrss_kib={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
"""


def measured_test_run(tmp_path: Path, spec: str) -> tuple[str, int, int]:
    """Run `account-watcher test` on `spec` in a child; out: (stdout, exit code, peak RSS MiB)."""
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(LOW))
    (tmp_path / "t.yaml").write_text(textwrap.dedent(spec))
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path / "t.yaml")],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=REPO,
        timeout=150,
        check=False,
    )
    *out, last = result.stdout.splitlines()
    rc, rss = (int(part.split("=")[1]) for part in last.split())
    return "\n".join(out).replace(str(tmp_path), "TMP"), rc, rss // 1024


def test_a_huge_series_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    spec = """\
        rule_files: [rules.yaml]
        tests:
          - name: huge
            balance: {available_credit: "50-1x100000000", pending: "_x100000000"}
            expect: [{at: 0s, alerts: []}]
    """
    out, rc, rss = measured_test_run(tmp_path, spec)
    assert rc == 1, out
    assert (
        "TMP/t.yaml:4:33: tests[0].balance.available_credit: the series has "
        "100,000,001 values; at most 100,000 are allowed"
    ) in out.splitlines()
    assert "Traceback" not in out
    assert rss < 200


def test_many_long_series_stay_small(tmp_path: Path) -> None:
    """The longest allowed series, in many cases: memory stays bounded (series are lazy)."""
    case = """\
  - name: long {n}
    balance:
      available_credit: "100000-1x99999"
      balance: "0+1x99999"
      credit_limit: "_x99999 5"
      pending: "1+0x99999"
    expect: [{{at: 0s, alerts: []}}]
"""
    spec = "rule_files: [rules.yaml]\ntests:\n" + "".join(case.format(n=n) for n in range(60))
    out, rc, rss = measured_test_run(tmp_path, spec)
    assert rc == 0, out
    assert rss < 200


def test_a_long_run_keeps_only_the_history_it_needs(tmp_path: Path) -> None:
    spec = """\
        rule_files: [rules.yaml]
        evaluation_interval: 1s
        tests:
          - name: long
            balance: {available_credit: "1000+0.01x99999"}
            expect: [{at: 27h46m39s, alerts: []}]
    """
    out, rc, rss = measured_test_run(tmp_path, spec)
    assert rc == 0, out
    assert rss < 200


def test_too_many_webhook_deliveries_are_refused(tmp_path: Path) -> None:
    items = "".join("      - {at: 0s, count: 10000}\n" for _ in range(200))
    spec = (
        "rule_files: [rules.yaml]\ntests:\n  - name: flood\n    webhook_deliveries:\n"
        + items
        + "    expect: [{at: 0s, alerts: []}]\n"
    )
    out, rc, rss = measured_test_run(tmp_path, spec)
    assert rc == 1, out
    assert (
        "TMP/t.yaml:3:5: tests[0]: 2,000,000 webhook deliveries in all; at most 100,000 are allowed"
    ) in out.splitlines()
    assert rss < 200
