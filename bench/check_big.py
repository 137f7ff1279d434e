"""Time and peak memory of `account-watcher check` on a generated 5 MB rules file.

Writes a config and one rules file of about 19,500 varied rules (balance with levels and
hysteresis, forecast, audit with match/ignore, webhook failures; descriptions, labels,
routes, mute windows, block and flow style) into a temp dir, runs the real CLI on it as
a subprocess, and prints wall time and the peak RSS of that child process
and CPU time (`resource.getrusage(RUSAGE_CHILDREN)`; on a shared machine CPU time is the
steadier figure).

    .venv/bin/python bench/check_big.py [RULES] [RUNS]

Targets (issue 9, defect 12): under 10 s and under 150 MB for the 5 MB file.

Measured here (2 shared cores, 2026-12-01), 19,500 rules / 5.29 MB:

    before (main; YAML and check code as at 080f593: four load_yaml calls per file, each
      a compose and a safe_load in pure Python):
      wall 1006 s (load average ~6), CPU 172 s, peak RSS 781 MB
    after (one pass with libyaml's parser, flat mark table, docs kept for rulecheck):
      wall 3.2-5.9 s, CPU 3.1-4.6 s, peak RSS 138 MB
"""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
accounts:
  - name: main
  - name: backup
poll:
  interval: 1m
rules: [big.yaml]
notify:
  default_route: ops
  routes:
    ops: {urls: ["json://127.0.0.1:9/hook"]}
    billing: {urls: ["json://127.0.0.1:9/billing"], min_severity: warning}
"""

_WORDS = [
    "credit",
    "balance",
    "spend",
    "account",
    "webhook",
    "audit",
    "change",
    "owner",
    "portal",
    "funds",
    "check",
    "why",
    "jumped",
    "failing",
    "calls",
    "messages",
    "billing",
    "team",
    "ops",
    "night",
    "weekend",
    "card",
    "renewal",
]


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _balance(rng: random.Random, name: str) -> str:
    warning = rng.randint(60, 500)
    critical = rng.randint(10, warning - 10)
    return (
        f"  - name: {name}\n"
        "    kind: balance\n"
        f"    description: >-\n      {_sentence(rng, 6)}\n      {_sentence(rng, 3)}\n"
        f"    field: {rng.choice(['available_credit', 'balance'])}\n"
        f"    below: {{warning: {warning}, critical: {critical}}}\n"
        f"    clear_above: {warning + rng.randint(0, 50)}\n"
        f"    for: {rng.choice(['0s', '5m', '10m', '1h'])}\n"
        f"    route: [{rng.choice(['ops', 'billing'])}]\n"
        f"    labels: {{team: {rng.choice(_WORDS)}, tier: '{rng.randint(1, 3)}'}}\n"
    )


def _forecast(rng: random.Random, name: str) -> str:
    return (
        f"  - name: {name}\n"
        "    kind: forecast\n"
        f"    description: {_sentence(rng, 5)}\n"
        f"    runs_out_within: {rng.choice(['12h', '24h', '3d'])}\n"
        f'    floor: "{rng.randint(0, 50)}.00"\n'
        f"    lookback: {rng.choice(['6h', '12h', '1d'])}\n"
        f"    min_samples: {rng.randint(3, 8)}\n"
        "    accounts: [main]\n"
        "    mute: ['Sat 00:00-06:00 UTC']\n"
    )


def _audit(rng: random.Random, name: str) -> str:
    return (
        f"  - name: {name}\n"
        "    kind: audit\n"
        f"    description: {_sentence(rng, 6)}\n"
        "    match:\n"
        "      change_made_by: [account_owner, organization_member]\n"
        f"      field: '{rng.choice(['webhook_*', 'tags', 'name'])}'\n"
        "    ignore:\n"
        f"      - {{user_id: '{rng.getrandbits(64):016x}'}}\n"
        "      - {change_type: update, field: tags}\n"
        f"    severity: {rng.choice(['info', 'warning', 'critical'])}\n"
    )


def _webhooks(rng: random.Random, name: str) -> str:
    return (
        f"  - {{name: {name}, kind: webhook_failures, window: {rng.choice(['15m', '30m', '1h'])}, "
        f"at_least: {rng.randint(1, 50)}, ratio: 0.{rng.randint(1, 9)}, min_deliveries: 20, "
        f"event_type: ['message.*', 'call.*'], group_by: {rng.choice(['url', 'event_type'])}, "
        f"summary: '{{account}}: {{value}}', description: {_sentence(rng, 5)}}}\n"
    )


def rules_text(count: int, seed: int = 9) -> str:
    """A rules file of `count` rules, deterministic for a seed."""
    rng = random.Random(seed)
    makers = (_balance, _forecast, _audit, _webhooks)
    parts = ["rules:\n"]
    for index in range(count):
        maker = makers[index % len(makers)]
        parts.append(maker(rng, f"rule-{index:05d}-{maker.__name__.strip('_')}"))
    return "".join(parts)


def run_check(directory: Path) -> tuple[float, float, float, int, str]:
    """One `check` in a child process: wall and CPU seconds, peak RSS MB, exit code and
    the last line it printed."""
    command = [sys.executable, "-m", "watcher", "--config", str(directory / "config.yaml")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "check"], capture_output=True, text=True, check=False, env=_environ()
    )
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    tail = (done.stdout or done.stderr).strip().splitlines()
    return wall, cpu, usage.ru_maxrss / 1024, done.returncode, tail[-1] if tail else ""


def _environ() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("WATCHER_") and name != "CREDENTIALS_DIRECTORY"
    }


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 19_500
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "config.yaml").write_text(CONFIG)
        text = rules_text(count)
        (directory / "big.yaml").write_text(text)
        size_mb = len(text.encode()) / 1_000_000
        print(f"rules file: {count:,} rules, {size_mb:.2f} MB")
        print(f"{'run':>3}  {'wall s':>7}  {'CPU s':>7}  {'peak RSS MB':>11}  {'exit':>4}  result")
        worst_wall = worst_rss = 0.0
        for run in range(1, runs + 1):
            wall, cpu, rss, code, tail = run_check(directory)
            worst_wall, worst_rss = max(worst_wall, wall), max(worst_rss, rss)
            print(f"{run:>3}  {wall:>7.2f}  {cpu:>7.2f}  {rss:>11.1f}  {code:>4}  {tail[:50]}")
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"(this bench process peaked at {own:.1f} MB: a child's figure above that is")
        print(" its own, not the RSS it inherited at fork)")
        verdict = "met" if worst_wall < 10 and worst_rss < 150 else "NOT met"
        print(f"target < 10 s and < 150 MB (peak RSS is the largest child so far): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
