"""Vonage fault paths through the real CLI (real processes) against the Vonage simulator:
no crash, the other sources still evaluated, a disabled beta is not an outage, a killed
top-up is never sent twice, and the secret and the trx are shown nowhere."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import Receiver, run_cli, wait_for
from vonage_support import (
    AUDIT,
    BALANCE,
    LOW_CREDIT,
    SECRET,
    SECRETS,
    TOPUP,
    TOPUP_CAPS,
    TRX,
    assert_no_secret,
    env,
    ledger,
    low_credit_topup_rules,
    once,
    requests,
    start,
    vonage_account,
    vonage_fixture,  # noqa: F401 (the fixture `vonage`)
    write_vonage_config,
)

from watcher.providers.simkit import Fault
from watcher.providers.vonage.sim import VonageSimServer
from watcher.state.ledger import EntryState

MORE_RULES = """\
  - name: auto-reload-change
    kind: audit
    match: {event_type: ["AUTORELOAD_*"]}
  - name: credential-change
    kind: credentials
"""
RULES = LOW_CREDIT + MORE_RULES
LOW = "[CRITICAL] low-credit firing — eu"
DOWN = "[CRITICAL] watcher-source-down firing — eu [api-key]"


def _config(tmp_path: Path, server: VonageSimServer, receiver: Receiver) -> Path:
    poll = "{interval: 10s, timeout: 2s}"
    return write_vonage_config(tmp_path, vonage_account(server), [receiver.url], RULES, poll=poll)


def test_rejected_credentials_are_reported_and_alerted(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    config = _config(tmp_path, vonage, receiver)
    vonage.account.revoke_key()
    out = once(config).stdout
    assert requests(vonage, BALANCE) == 1  # a 401 is not retried
    assert "balance: FAILED" in out and "401" in out
    assert "audit: FAILED" in out  # a 401 is the key, not the beta: the source is not disabled
    assert receiver.titles == [DOWN]
    body = str(receiver.messages[0]["message"])
    assert "The API rejected the key" in body
    assert "audit, balance, credentials" in body


def test_429_with_a_millisecond_rate_limit_reset_is_waited_for_and_recovers(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    config = _config(tmp_path, vonage, receiver)
    reset_ms = int((time.time() + 4) * 1000)  # epoch milliseconds, no Retry-After
    fault = Fault.status(429, headers={"X-RateLimit-Reset": str(reset_ms)})
    vonage.account.inject_fault(BALANCE, fault)
    out = once(config).stdout
    first, second = [r.received_at for r in vonage.account.requests if r.path == BALANCE]
    # waited until the reset (read as epoch ms, not as seconds-until or epoch seconds);
    # the start-up of `once` may take a while on a busy machine, so only the retry's time
    # is measured against the reset, not the gap
    retried_at = second.timestamp() * 1000
    assert retried_at >= reset_ms - 250, (retried_at - reset_ms, first, second)
    assert "balance: ok" in out
    assert receiver.titles == [LOW]


@pytest.mark.parametrize(
    ("fault", "times", "expect"),
    [
        (Fault.status(500), 2, "balance: ok"),  # retried until it works
        (Fault.status(503), -1, "balance: FAILED"),  # keeps failing: source failed
        (Fault.malformed(), -1, "balance: FAILED"),  # not JSON: not retried, failed
        (Fault.malformed('{"value": "many", "autoReload": false}'), -1, "balance: FAILED"),
    ],
)
def test_a_balance_fault_does_not_stop_the_other_sources(
    tmp_path: Path,
    vonage: VonageSimServer,
    receiver: Receiver,
    fault: Fault,
    times: int,
    expect: str,
) -> None:
    config = _config(tmp_path, vonage, receiver)
    vonage.account.inject_fault(BALANCE, fault, times=times)
    out = once(config).stdout
    assert expect in out
    assert "audit: ok" in out and "credentials: ok" in out
    assert (LOW in receiver.titles) is (expect == "balance: ok")
    assert DOWN not in receiver.titles


def test_malformed_json_is_one_clear_sentence(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    config = _config(tmp_path, vonage, receiver)
    vonage.account.inject_fault(BALANCE, Fault.malformed(), times=-1)
    result = once(config)
    assert requests(vonage, BALANCE) == 1  # permanent: not retried
    assert "response is not valid JSON" in result.stdout


def test_audit_403_disables_the_source_with_one_warning_and_no_source_down(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    vonage.account.disable_audit()  # the beta is not enabled for this account
    config = write_vonage_config(
        tmp_path,
        vonage_account(vonage),
        [receiver.url],
        RULES,
        poll="{interval: 1s, timeout: 1s, source_down_after: 1s}",
    )
    daemon = start(config, WATCHER_ALLOW_FAST_POLL="1")
    try:
        wait_for(lambda: requests(vonage, BALANCE) >= 4)
        audit_reads = requests(vonage, AUDIT)
        vonage.account.disable_audit(False)  # enabled now: read again after a reload only
        wait_for(lambda: requests(vonage, BALANCE) >= 6)
        unchanged = requests(vonage, AUDIT)
        daemon.send_signal(signal.SIGHUP)  # a reload builds the provider anew
        wait_for(lambda: requests(vonage, AUDIT) > unchanged)
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=20)
    finally:
        daemon.kill()
    assert daemon.returncode == 0, err
    assert audit_reads == unchanged == 1  # disabled after the first 403, until the reload
    disabled = [line for line in (out + err).splitlines() if "source.disabled" in line]
    assert len(disabled) == 1, disabled
    assert "audit" in disabled[0]
    assert receiver.titles == [LOW]  # no watcher-source-down; the rest is watched
    assert_no_secret(out + err)


def test_sigkill_during_the_top_up_post_never_leads_to_a_second_post(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    account = vonage_account(vonage, currency="EUR", extra=TOPUP_CAPS)
    config = write_vonage_config(
        tmp_path, account, [receiver.url], low_credit_topup_rules(), established=True
    )
    release = threading.Event()
    vonage.account.inject_fault(TOPUP, Fault.hold(release))
    daemon = start(config)
    try:
        wait_for(lambda: requests(vonage, TOPUP, "POST") == 1)  # arrived; no answer yet
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
    finally:
        daemon.kill()
        release.set()  # the server goes on and charges the card, as a real one may
    assert daemon.returncode == -signal.SIGKILL
    wait_for(lambda: vonage.account.topups != [])
    assert [e.state for e in ledger(tmp_path)] == [EntryState.SENDING]

    unknown = "[CRITICAL] top-up outcome unknown 50.00 EUR — eu"
    again = start(config)
    try:
        wait_for(lambda: unknown in receiver.titles)
        again.send_signal(signal.SIGTERM)
        _, err = again.communicate(timeout=20)
    finally:
        again.kill()
    assert again.returncode == 0, err
    assert requests(vonage, TOPUP, "POST") == 1, "no second POST after the restart"
    assert [e.state for e in ledger(tmp_path)] == [EntryState.UNKNOWN]
    assert_no_secret(err)


def test_the_secret_and_the_trx_appear_nowhere(
    tmp_path: Path, vonage: VonageSimServer, receiver: Receiver
) -> None:
    account = vonage_account(vonage, currency="EUR", extra=TOPUP_CAPS)
    rules = low_credit_topup_rules() + MORE_RULES
    poll = "{interval: 10s, timeout: 2s, slow_interval: 0.1s}"
    config = write_vonage_config(
        tmp_path, account, [receiver.url], rules, poll=poll, established=True,
        extra="log: {level: debug}\n",
    )  # fmt: skip
    vonage.account.inject_fault(SECRETS, Fault.status(401))  # an error body logged at debug
    outputs = [once(config), once(config)]
    vonage.account.add_secret(value="Another-Secret-5")
    vonage.account.add_audit_event(event_type="AUTORELOAD_DISABLE")
    outputs.append(once(config))
    status = run_cli("--config", str(config), "status", env=env())
    topups = run_cli("--config", str(config), "topups", env=env())
    assert "[INFO] top-up paid 50.00 EUR — eu" in receiver.titles  # the trx was sent
    assert any("credential" in t for t in receiver.titles)
    assert any('"level": "debug"' in o.stderr for o in outputs)  # debug logs were written
    for text in [*(o.stdout + o.stderr for o in outputs), status.stdout + status.stderr]:
        assert_no_secret(text)
    assert_no_secret(topups.stdout + topups.stderr)
    for message in receiver.messages:
        assert_no_secret(str(message))
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert files, "the state directory holds the state"
    for path in files:
        data = path.read_bytes()
        assert SECRET.encode() not in data and TRX.encode() not in data, path
