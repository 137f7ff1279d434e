"""Audit events as the API serves them: `record_type` is `audit_event`, in the simulator
and in the demo's story alike (the spec's AuditLog example)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx
import yaml

from watcher.cli.demo import DEMO_KEY, Story, _script
from watcher.providers.telnyx.sim import SimAccount, SimServer

LOCAL_SPEC = Path(__file__).parent / "data" / "telnyx-account.openapi.yaml"


def served_events(account: SimAccount, key: str) -> list[dict[str, object]]:
    with SimServer(account) as server:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.base_url, headers=headers) as client:
            return list(client.get("/audit_events").json()["data"])


def test_the_spec_says_audit_event() -> None:
    spec = yaml.safe_load(LOCAL_SPEC.read_text())
    field = spec["components"]["schemas"]["AuditLog"]["properties"]["record_type"]
    assert field["example"] == "audit_event"


def test_simulated_and_demo_audit_events_have_record_type_audit_event() -> None:
    account = SimAccount(api_key="k")
    account.add_audit_event()
    now = account.now()
    account.add_audit_backlog(2, start=now - timedelta(minutes=1), end=now)
    assert [e["record_type"] for e in served_events(account, "k")] == ["audit_event"] * 3

    demo = SimAccount(api_key=DEMO_KEY)
    for _at, action in _script(demo, Story(), time.monotonic()):
        action()
    events = served_events(demo, DEMO_KEY)
    assert events and {e["record_type"] for e in events} == {"audit_event"}
