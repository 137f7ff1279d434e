"""`account-watcher demo` through the real CLI: one Telnyx and one Vonage account in one
story (a top-up under the caps, then a fraud hold that refuses the next one), every
alert printed, ending by itself (run at 4× speed to keep the suite short)."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
from conftest import REPO, cli_env, wait_for

EXPECTED_TITLES = [
    "[CRITICAL] unexpected-config-change: 1 audit event — demo",
    "[CRITICAL] auto-reload-switched-off: 1 audit event — eu",
    "[WARNING] low-credit firing — demo",
    "[WARNING] low-credit firing — eu",
    "[CRITICAL] webhook-failure-spike firing — demo [https://hooks.example.com/telnyx/messages]",
    "[CRITICAL] low-credit escalated to critical — demo",
    "[WARNING] api-secret-change: 1 credential change — eu",
    "[INFO] top-up paid 100.00 USD — demo",
    # the config change holds the account's top-ups: the next critical credit is refused
    "[WARNING] low-credit firing — demo",
    "[CRITICAL] low-credit escalated to critical — demo",
    "[WARNING] top-up refused (held) 100.00 USD — demo",
]
RESOLVED_PREFIXES = {
    "[RESOLVED] low-credit — demo": 2,  # by the top-up, then by a payment by hand
    "[RESOLVED] low-credit — eu": 1,
    "[RESOLVED] webhook-failure-spike — demo": 1,
}


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
    # top-ups are enabled and the demo's state is always new: the daemon says so, once
    fresh = [t for t in titles if t.startswith("[WARNING] state created fresh at ")]
    assert len(fresh) == 1, titles
    titles.remove(fresh[0])
    assert sorted(t for t in titles if not t.startswith("[RESOLVED]")) == sorted(EXPECTED_TITLES)
    for prefix, count in RESOLVED_PREFIXES.items():
        assert sum(t.startswith(prefix) for t in titles) == count, (prefix, titles)
    # the change came before the second critical: the hold refused the top-up, and the
    # held message names the rule and the event that caused it
    assert titles.index("[CRITICAL] unexpected-config-change: 1 audit event — demo") < (
        titles.index("[WARNING] top-up refused (held) 100.00 USD — demo")
    )
    assert "held by rule unexpected-config-change since" in done.stdout
    assert "webhook_url: https://hooks.example.com/telnyx → https://hooks.example.net/new" in (
        done.stdout
    )
    # the Vonage balance is shown exactly as the API gave it, in the configured currency
    assert "available_credit is 86.40123456 EUR, below 100.00 EUR." in done.stdout
    assert "demo finished in" in done.stdout and "16 notifications" in done.stdout
    assert "1 of them a top-up payment" in done.stdout  # the held one was never sent
    assert "Traceback" not in done.stderr


def test_demo_web_serves_the_page_until_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "watcher", "demo", "--web", "--speed", "4"],
        env=cli_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = ""
        for _ in range(20):  # the intro, then the URL
            line = process.stdout.readline()
            if line.startswith("status page: "):
                url = line.split()[2]
                break
        assert url.startswith("http://127.0.0.1:"), url
        wait_for(lambda: '"balance": "' in httpx.get(url + "api/v1/status").text)
        page = httpx.get(url)
        assert page.status_code == 200
        assert 'data-account="demo"' in page.text and 'data-account="eu"' in page.text
        assert page.headers["content-security-policy"] == "default-src 'self'"
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "demo finished in" in out
    assert "Traceback" not in err
