"""`account-watcher demo` through the real CLI: one Telnyx and one Vonage account in one
story, every alert printed, ending by itself (run at 4× speed to keep the suite short)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, cli_env

EXPECTED_TITLES = [
    "[CRITICAL] unexpected-config-change: 1 audit event — demo",
    "[CRITICAL] auto-reload-switched-off: 1 audit event — eu",
    "[WARNING] low-credit firing — demo",
    "[WARNING] low-credit firing — eu",
    "[CRITICAL] webhook-failure-spike firing — demo [https://hooks.example.com/telnyx/messages]",
    "[CRITICAL] low-credit escalated to critical — demo",
    "[WARNING] api-secret-change: 1 credential change — eu",
]
RESOLVED_PREFIXES = [
    "[RESOLVED] low-credit — demo",
    "[RESOLVED] low-credit — eu",
    "[RESOLVED] webhook-failure-spike — demo",
]


def test_the_demo_tells_both_accounts_story_and_ends_by_itself() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "demo", "--speed", "4"],
        env=cli_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    titles = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert sorted(t for t in titles if not t.startswith("[RESOLVED]")) == sorted(EXPECTED_TITLES)
    for prefix in RESOLVED_PREFIXES:
        assert sum(t.startswith(prefix) for t in titles) == 1, (prefix, titles)
    # the Vonage balance is shown exactly as the API gave it, in the configured currency
    assert "available_credit is 86.40123456 EUR, below 100.00 EUR." in done.stdout
    assert "demo finished in" in done.stdout and "10 notifications" in done.stdout
    assert "Traceback" not in done.stderr
