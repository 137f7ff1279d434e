"""The status page in a real browser (DESIGN §11): Debian's chromium driven by
Playwright for Python (never Playwright's own browser download). Two accounts (Telnyx
and Vonage) from a state built by the real CLI; the chart's points and threshold lines,
the numbers equal to the state, a silenced alert, no console errors and no CSP
violations, the balance with JavaScript off, a phone-sized viewport without sideways
scrolling, and a screenshot under the test's tmp dir.

chromium missing: the tests fail under CI (CI=true), and are skipped with the reason
elsewhere; `make test` installs it (apt-get install chromium)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from webstate import PageState, page_state, serving

from watcher.core.rules import money
from watcher.state.store import Store

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CSP_LISTENER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
    e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageState]:
    with page_state(tmp_path_factory.mktemp("browser"), "json://127.0.0.1:9/down") as s:
        yield s


@pytest.fixture(scope="module")
def base(state: PageState) -> Iterator[str]:
    with serving(state) as url:
        yield url


class Watched:
    """A page with every console error, page error and CSP violation collected."""

    def __init__(self, context: Any) -> None:
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.add_init_script(CSP_LISTENER)

    def _console(self, message: Any) -> None:
        if message.type in {"error", "warning"}:
            self.errors.append(f"console {message.type}: {message.text}")

    def violations(self) -> list[str]:
        found: list[str] = self.page.evaluate("window.__csp")
        return found


def _stored(state: PageState) -> dict[str, list[str]]:
    """The available_credit samples of the last day per account, read from the state."""
    with Store.open(state.state) as store:
        since = datetime.now(UTC) - timedelta(days=1)
        return {
            name: [str(b.available_credit) for _, b in store.balance_samples(name, since)]
            for name in ("main", "eu")
        }


def test_the_page_shows_both_accounts_as_the_state_holds_them(
    browser: Any, base: str, state: PageState, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watched = Watched(context)
    response = watched.page.goto(base + "/")
    assert response is not None and response.status == 200
    api = httpx.get(base + "/api/v1/status").json()
    stored = _stored(state)
    for account in api["accounts"]:
        name = account["name"]
        section = watched.page.locator(f'section[data-account="{name}"]')
        points = section.locator("polyline.balance").get_attribute("points")
        assert points is not None
        assert len(points.split()) == len(stored[name]) == len(account["chart"]["points"])
        assert section.locator("line.threshold").count() == 2
        assert section.locator("line.threshold.warning").count() == 1
        assert section.locator("line.threshold.critical").count() == 1
        shown = section.locator("dd.balance").inner_text()
        assert account["balance"] == stored[name][-1]
        assert shown == money(Decimal(stored[name][-1]), account["currency"])
        assert (
            section.locator("dd.spend-day")
            .inner_text()
            .endswith("of 300.00 " + account["currency"])
        )
    assert (
        watched.page.locator('section[data-account="main"] h3').inner_text() == "main (telnyx, USD)"
    )
    assert watched.page.locator('section[data-account="eu"] h3').inner_text() == "eu (vonage, EUR)"
    assert watched.page.locator('section[data-account="eu"] dd.balance').inner_text() == (
        "40.12345678 EUR"
    )
    silenced = watched.page.locator('tr.alert[data-rule="low-credit"][data-account="eu"]')
    assert silenced.get_attribute("data-status") == "silenced"
    assert silenced.locator(".badge").inner_text() == "silenced"
    firing = watched.page.locator('tr.alert[data-rule="low-credit"][data-account="main"]')
    assert firing.get_attribute("data-status") == "firing"
    assert "<script>" in watched.page.locator("dd.hold").inner_text()  # shown as text
    watched.page.wait_for_load_state("networkidle")
    assert watched.violations() == []
    assert watched.errors == []
    shot = tmp_path / "status-page.png"
    watched.page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    context.close()


def test_the_csp_listener_does_see_a_violation(browser: Any, base: str) -> None:
    """The check above is not vacuous: a blocked inline style is caught."""
    context = browser.new_context()
    watched = Watched(context)
    watched.page.goto(base + "/")
    watched.page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"x\">x</p>')")
    watched.page.wait_for_function("window.__csp.length > 0")
    assert watched.violations()[0].startswith("style-src")
    context.close()


def test_the_balance_shows_with_javascript_off(browser: Any, base: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(base + "/?span=7d")
    assert page.locator('section[data-account="main"] dd.balance').inner_text() == "60.00 USD"
    assert page.locator('section[data-account="eu"] polyline.balance').count() == 1
    assert page.locator('nav a[aria-current="page"]').inner_text() == "7d"
    context.close()


def test_readable_on_a_phone(browser: Any, base: str, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    watched = Watched(context)
    watched.page.goto(base + "/")
    overflow = watched.page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    assert watched.page.locator('section[data-account="main"] dd.balance').is_visible()
    shot = tmp_path / "status-page-phone.png"
    watched.page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert watched.errors == [] and watched.violations() == []
    context.close()


def test_an_acked_alert_shows_who_and_why_in_the_browser(browser: Any, tmp_path: Path) -> None:
    """After a real `account-watcher ack`, the row of the alert says acked, by whom and
    why (the reason is shown as text), beside the silenced one; no console or CSP error."""
    with page_state(tmp_path, "json://127.0.0.1:9/down", samples=1) as state:
        state.cli("ack", "low-credit", "--account", "main", "--reason", "topping <b>up</b>")
        with serving(state) as url:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            watched = Watched(context)
            response = watched.page.goto(url + "/")
            assert response is not None and response.status == 200
            acked = watched.page.locator('tr.alert[data-rule="low-credit"][data-account="main"]')
            assert acked.get_attribute("data-status") == "acked"
            assert acked.locator(".badge").inner_text() == "acked"
            assert acked.inner_text().count(": topping <b>up</b>") == 1  # as text, not markup
            assert acked.locator("b").count() == 0
            silenced = watched.page.locator('tr.alert[data-rule="low-credit"][data-account="eu"]')
            assert silenced.get_attribute("data-status") == "silenced"
            watched.page.wait_for_load_state("networkidle")
            assert watched.violations() == []
            assert watched.errors == []
            shot = tmp_path / "status-page-acked.png"
            watched.page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            context.close()
