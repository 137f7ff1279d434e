"""The status page shows an ack (who: why) and escalation from the state (DESIGN §11),
after a real `account-watcher ack` against a real state of two simulated accounts."""

from __future__ import annotations

from pathlib import Path

import httpx
from webstate import page_state, serving


def test_the_page_and_the_api_show_who_acked_and_why(tmp_path: Path) -> None:
    with page_state(tmp_path, "json://127.0.0.1:9/unreachable", samples=1) as state:
        state.cli("ack", "low-credit", "--account", "main", "--reason", "topping <i>up</i>")
        with serving(state) as base:
            view = httpx.get(base + "/api/v1/status").json()
            page = httpx.get(base + "/").text
    alerts = {(a["rule"], a["account"]): a for a in view["alerts"]}
    acked = alerts[("low-credit", "main")]
    assert acked["status"] == "acked"
    assert acked["acked_by"] and acked["ack_reason"] == "topping <i>up</i>"
    assert alerts[("low-credit", "eu")]["status"] == "silenced"  # not acked: another account
    assert f"by {acked['acked_by']}: topping &lt;i&gt;up&lt;/i&gt;" in page
