"""`status` and `topups` say what the daemon will do: paying, dry run, or paused."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from conftest import run_cli
from topup_support import write_topup_config

from watcher.providers.telnyx.sim import SimServer
from watcher.state import journal
from watcher.state.ledger import EntryState, Ledger, NewEntry
from watcher.state.store import Store


def out(config: Path, *args: str) -> str:
    result = run_cli("--config", str(config), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_paused_account_is_not_said_to_be_paying(tmp_path: Path, sim: SimServer) -> None:
    config = write_topup_config(tmp_path, '{enabled: true, amount: "100.00"}', sim=sim)
    out(config, "once")
    assert "  main: paying; used " in out(config, "topups")
    out(config, "topups", "pause", "--reason", "card replaced")
    for command in ("status", "topups"):
        lines = out(config, command).splitlines()
        [line] = [x for x in lines if x.lstrip().startswith("main: ")]
        assert line.lstrip().startswith("main: not paying (top-ups PAUSED); used "), line
    out(config, "topups", "resume")
    assert "  main: paying; used " in out(config, "topups")


def test_a_lost_state_is_not_said_to_be_paying(tmp_path: Path, sim: SimServer) -> None:
    config = write_topup_config(tmp_path, '{enabled: true, amount: "100.00"}', sim=sim)
    state = tmp_path / "state.db"
    with Store.open(state) as store:
        new = NewEntry("main", Decimal("100.00"), "USD", "low-credit", "low-credit is critical")
        entry = Ledger(store).add(new, EntryState.SENDING, datetime.now(UTC))
    journal.append(journal.journal_path(state), journal.sending_record(entry))
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        state.with_name(name).unlink(missing_ok=True)  # the journal beside it remains
    lines = out(config, "topups").splitlines()
    assert "  main: not paying (top-ups REFUSED: state-lost); used " in "\n".join(lines)
