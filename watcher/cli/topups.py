"""`account-watcher topups`: the ledger, settling unknown entries, the kill switch.

- `topups [--account NAME] [--since 7d]` lists the ledger (newest last) and the caps used.
- `topups settle ID --as succeeded|failed --reason "..."` records a human's verdict on an
  `unknown` entry (who: `$SUDO_USER`, else `$USER`; when; why). `failed` frees the cap.
- `topups pause --reason "..."` / `topups resume`: the kill switch, stored in the state
  database; the running daemon honours it from its next cycle.
- `topups hold --account A --reason "..."` sets a fraud hold by hand (DESIGN §6.3; it
  lasts until released); `topups release --account A --reason "..."` lifts every hold of
  the account in force (a rule's or a manual one) from the daemon's next cycle. Both are
  kept in the ledger's history (who, when, why) and listed by `topups`.

Also `status_lines`, the top-up part of `account-watcher status`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from watcher.cli.common import state_target
from watcher.config.settings import Settings, load_settings
from watcher.config.yamlfile import ConfigError
from watcher.core.durations import parse_duration
from watcher.core.holds import Hold, active_holds, describe
from watcher.core.render import when
from watcher.core.rules import money
from watcher.core.topup import MONTH, Caps, usage
from watcher.core.topup_text import caps_text
from watcher.service import logs
from watcher.state.journal import journal_path
from watcher.state.ledger import Entry, EntryState, Guard, Ledger, LedgerError, Pause
from watcher.state.store import (
    StateTarget,
    Store,
    StoreError,
    describe_target,
    open_store,
    state_exists,
)

EXIT_OK, EXIT_USAGE, EXIT_RUNTIME = 0, 2, 3
RECENT_IN_STATUS = 5


def user() -> str:
    """Who runs the command: `$SUDO_USER`, else `$USER`, else the login name."""
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or getpass.getuser()


def cmd_topups(path: Path, args: argparse.Namespace, out: TextIO, err: TextIO | None = None) -> int:
    """Run `topups [ACTION]` against the state database of the config at `path`.

    Out: the exit code (0 ok; 2 bad input, e.g. an id that is not an unknown entry or an
    invalid config; 3 the state database is unusable). Errors go to `err` (default
    stderr), one sentence.
    """
    err = sys.stderr if err is None else err
    try:
        settings, target = _state(path)
        logs.configure_logging(level="warning", fmt=settings.log.format)  # stderr, not stdout
        check_account(settings, args.account)
        check_account(settings, getattr(args, "hold_account", None))
        if args.topups_action is None and not _any_state(target):
            print(f"no state yet at {describe_target(target)}: the daemon has not run", file=out)
            return EXIT_OK
        with open_store(target) as store:
            return _run(Ledger(store), settings, args, out)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=err)
        print(f"account-watcher: invalid configuration in {path}", file=err)
        return EXIT_USAGE
    except (LedgerError, ValueError) as exc:
        print(f"account-watcher: {exc}", file=err)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"account-watcher: {exc}", file=err)
        return EXIT_RUNTIME


def _any_state(target: StateTarget) -> bool:
    """A state database, or the ledger journal of a lost SQLite one, exists."""
    if not isinstance(target, Path):
        return state_exists(target)
    return target.exists() or journal_path(target).exists()


def _state(path: Path) -> tuple[Settings, StateTarget]:
    loaded = load_settings(path, environ=os.environ)
    return loaded.settings, state_target(loaded)


def check_account(settings: Settings, name: str | None) -> None:
    """An `--account` must name a configured account. Raises ValueError (exit 2)."""
    names = [account.name for account in settings.accounts]
    if name is not None and name not in names:
        raise ValueError(f"no account {name!r} in the config (accounts: {', '.join(names)})")


def _run(ledger: Ledger, settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    now = datetime.now(UTC)
    ledger.recover(now, seed=False)  # entries the database lost come back from the journal
    match args.topups_action:
        case "settle":
            entry = ledger.settle(
                args.id, EntryState(args.settle_as), by=user(), reason=args.reason, now=now
            )
            print(f"top-up #{entry.id} settled as {entry.state.value}:", file=out)
            print(entry_line(entry), file=out)
        case "pause":
            pause = ledger.pause(by=user(), reason=args.reason, now=now)
            print(pause_line(pause) + "; the daemon honours it from its next cycle", file=out)
        case "resume":
            lifted = ledger.resume()
            print("top-ups resumed" if lifted != Guard() else "top-ups were not paused", file=out)
        case "hold" | "release":
            print(_hold_action(ledger, settings, args, now), file=out)
        case _:
            since = now - parse_duration(args.since)
            entries = ledger.entries(account=args.account, since=since)
            lines = [f"top-ups since {when(since)}: {len(entries)}"]
            lines += [entry_line(e) for e in entries]
            lines += caps_lines(ledger, settings, now, only=args.account)
            lines.append(pause_line(ledger.paused()))
            lines += guard_lines(ledger.guard())
            lines += hold_lines(ledger, settings, now, since=since, only=args.account)
            print("\n".join(lines), file=out)
    return EXIT_OK


def _hold_action(
    ledger: Ledger, settings: Settings, args: argparse.Namespace, now: datetime
) -> str:
    """`topups hold` / `topups release`: what was done, in one line."""
    account = args.hold_account
    reason = args.reason.strip()
    if not reason:
        raise LedgerError("give a reason with --reason")
    if args.topups_action == "hold":
        hold = ledger.holds.hold(account, by=user(), reason=reason, now=now)
        return f"{account}: top-ups {describe(hold, _hold_after(settings, account))}"
    after = _hold_after(settings, account)
    released = ledger.holds.release(account, by=user(), reason=reason, now=now, hold_after=after)
    if not released:
        return f"{account}: top-ups were not on hold"
    return (
        f"{account}: released {len(released)} hold(s); top-ups are allowed again from the "
        "daemon's next cycle"
    )


def _hold_after(settings: Settings, account: str) -> timedelta:
    found = [a.topup.hold_after for a in settings.accounts if a.name == account]
    return found[0] if found else timedelta(hours=24)


def hold_lines(
    ledger: Ledger,
    settings: Settings,
    now: datetime,
    *,
    since: datetime | None = None,
    only: str | None = None,
) -> list[str]:
    """Per account: the holds in force; with `since`, also the history of holds since
    then (set, released: who, when, why)."""
    lines = []
    for account in settings.accounts:
        if only is not None and account.name != only:
            continue
        after = account.topup.hold_after
        holds = ledger.holds.all(account=account.name, since=since)
        live = {h.id for h in active_holds(holds, now, after)}
        for hold in holds:
            if hold.id in live:
                lines.append(f"  {account.name}: ON HOLD (#{hold.id}) {describe(hold, after)}")
            elif since is not None:
                lines.append(f"  {account.name}: hold #{hold.id} {_ended(hold, after)}")
    return ["fraud holds:", *lines] if lines else []


def _ended(hold: Hold, hold_after: timedelta) -> str:
    text = describe(hold, hold_after)
    if hold.released_at is not None:
        return (
            f"{text}; released by {hold.released_by} at {when(hold.released_at)}: "
            f"{hold.release_reason}"
        )
    return f"{text}; ended"


def entry_line(entry: Entry) -> str:
    """One ledger entry: id, time, account, amount, state, and what matters for it."""
    head = (
        f"  #{entry.id} {when(entry.created_at)} {entry.account} "
        f"{money(entry.amount, entry.currency)} {entry.state.value}"
    )
    parts = [f"rule {entry.rule}"]
    if entry.transaction_id:
        parts.append(f"transaction {entry.transaction_id}")
    if entry.verify_state is not None:
        parts.append(f"balance check {entry.verify_state.value}")
    if entry.error:
        parts.append(f"error: {entry.error}")
    if entry.state in (EntryState.REFUSED, EntryState.DRY_RUN):
        parts.append(entry.reason)
    if entry.settled_by:
        settled_at = when(entry.settled_at) if entry.settled_at else "?"
        parts.append(f"settled by {entry.settled_by} at {settled_at}: {entry.settle_reason or ''}")
    if entry.state is EntryState.UNKNOWN:
        parts.append(
            f'settle: account-watcher topups settle {entry.id} --as succeeded|failed --reason "..."'
        )
    return f"{head}; " + "; ".join(parts)


def pause_line(pause: Pause | None) -> str:
    if pause is None:
        return "top-ups: not paused"
    return f"top-ups: PAUSED by {pause.paused_by} since {when(pause.paused_at)}: {pause.reason}"


def guard_lines(guard: Guard) -> list[str]:
    """What a lost or fresh state does to top-ups ([] when nothing)."""
    lines = []
    if guard.lost is not None:
        lines.append(
            f"top-ups: REFUSED (state-lost) since {when(guard.lost.at)}: {guard.lost.found}; "
            "check the provider, settle what is in doubt, then `account-watcher topups resume`"
        )
    if guard.fresh_since is not None:
        lines.append(
            f"top-ups: the state was created fresh at {when(guard.fresh_since)}: each account "
            "waits its min_interval from then (`account-watcher topups resume` lifts it)"
        )
    return lines


def caps_lines(
    ledger: Ledger, settings: Settings, now: datetime, *, only: str | None = None
) -> list[str]:
    """Per account: mode (paying / dry run / not paying while paused or the state is
    lost), caps used, unknown entries to settle."""
    lines = []
    guard = ledger.guard()
    stopped = "PAUSED" if guard.pause else "REFUSED: state-lost" if guard.lost else None
    for account in settings.accounts:
        if only is not None and account.name != only:
            continue
        caps = Caps.of(account.topup)
        entries = ledger.entries(account=account.name, since=now - max(MONTH, caps.lookback))
        currency = _currency(entries)
        mode = "paying" if account.topup.enabled else "dry run (topup.enabled: false)"
        if stopped is not None:  # the kill switch or a lost state wins over both
            mode = f"not paying (top-ups {stopped})"
        elif active_holds(ledger.holds.unreleased(account.name), now, account.topup.hold_after):
            mode = "not paying (top-ups ON HOLD, see fraud holds)"
        text = f"  {account.name}: {mode}; used {caps_text(caps, usage(entries, now), currency)}"
        unknown = sum(1 for e in entries if e.state is EntryState.UNKNOWN)
        if unknown:
            text += f"; {unknown} unknown to settle"
        lines.append(text)
    return ["caps:", *lines] if lines else []


def _currency(entries: Sequence[Entry]) -> str:
    return entries[-1].currency if entries else ""


def status_lines(store: Store, settings: Settings, now: datetime) -> list[str]:
    """The top-up part of `status`: caps used in the last 24 h, the pause, recent entries."""
    ledger = Ledger(store)
    recent = ledger.entries(since=now - timedelta(days=7))[-RECENT_IN_STATUS:]
    lines = ["top-ups:"]
    lines += [f"  {line}" for line in caps_lines(ledger, settings, now)[1:]]
    lines.append(f"  {pause_line(ledger.paused())}")
    lines += [f"  {line}" for line in guard_lines(ledger.guard())]
    lines += [f"  {line}" for line in hold_lines(ledger, settings, now)]
    if recent:
        lines.append("  recent:")
        lines += [f"  {entry_line(e)}" for e in _newest_first(recent)]
    return lines


def _newest_first(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.created_at, e.id), reverse=True)
