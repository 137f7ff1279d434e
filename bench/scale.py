"""Many accounts in one daemon: wall per cycle, CPU per account-cycle, RSS, requests.

Starts one Telnyx simulator serving N accounts at one base URL (each its own API key,
each seeded as `bench/cycle.py` seeds its one: audit events in the overlap window,
webhook deliveries in the rule's window, nothing that fires), with `--latency` added to
every request (give or take a uniform `--jitter`), and runs the real `account-watcher
run` (a child process) on a config of those N accounts with balance + audit + webhook
rules at `--interval`. For each N of `--sizes`, after `--warmup` cycles (the first reads
every account's history), over `--cycles` steady-state cycles:

- wall per cycle: the `duration_s` of the daemon's `cycle.finished` log events (median,
  max);
- CPU per account-cycle, in the cycle: the `cpu_s` of each measured `cycle.finished`
  event (the process's CPU time from the cycle's start to its result, just before its
  report) over N, median of the cycles;
- CPU per account-cycle, all: the child's utime + stime (/proc/PID/stat) from the end of
  the last warm-up cycle to the end of the last measured one, over cycles × N (the idle
  time between cycles at `--interval` included);
- RSS: VmRSS and the peak VmHWM of the child after the last measured cycle;
- requests per cycle: what the simulator received, and the connections it accepted;
- the most requests the simulator had in flight at once (the concurrency bound).

With `--repeat K` the sizes run K times, interleaved (10, 100, 1000, 10, 100, …), and
each figure is the median of the K runs, the CPU with its range: on a shared VM the
machine's speed drifts (by ±15% from one second to the next on the VM of issue 13's
note), a short cycle samples that drift and a long one averages it, and sizes run one
after the other would see different machines. Below the table, the marginal CPU of an
account between two sizes, (C(b) − C(a)) / (b − a) of the in-cycle CPU per cycle C: what
one more account costs, without the fixed part of a cycle (the commit's transaction, the
outbox flush, the report) that a small N divides by few accounts. The cost per account
does not grow when these stay level.

    .venv/bin/python bench/scale.py [--sizes 10,100,1000] [--cycles 3] [--interval 60s]
                                    [--latency 0.05] [--jitter 0] [--warmup 1] [--repeat 1]
                                    [--ballast KB] [--exe PATH] [--pin]

`--jitter S` spreads the added latency over ±S, as a real network does. With a fixed
latency the answers of requests sent together come back together, in waves the daemon
reads in one wake-up each; a short cycle (10 or 100 accounts, under a second) keeps its
waves, a long one (1,000 accounts, 8 s) loses them as they drift apart, so a fixed
latency flatters the small sizes (by 15–25% of CPU per account on the 2-CPU VM of issue
13's note). `--latency 0.05 --jitter 0.025` (25–75 ms) measures every size without waves.

`--ballast KB` runs the daemon through `bench/ballast.py`, with KB of inert objects kept
beside each account: the same work on a larger heap, the control that separates a cost
growing with the accounts from one growing with the memory.

`--exe` measures another copy (e.g. a script running `git archive`d code), for a
before/after; the simulator stays this checkout's.

`--pin` keeps the simulator (this process, its 20 server threads) on the first CPU and
the daemon on the others, as a remote API would be: off the daemon's CPU. Unpinned, on a
machine of 2 CPUs, the daemon and the simulator's threads take turns on the same CPU at
every request (each answer wakes the daemon, each request a simulator thread), and the
daemon's CPU time grows by a quarter or more from cold caches alone, with a spread of
±10% from run to run; the table says which way it ran.

Targets (issue 13 item 1), at 50 ms latency and a 60 s interval: 1,000 accounts finish a
steady-state cycle in < 10 s wall, ≤ 1.5 ms CPU per account-cycle, ≤ 150 MB RSS, and the
per-account cost does not grow with N. A shorter `--interval` (e.g. 20s, with the fast
poll allowed) gives the same per-cycle numbers sooner, as long as a cycle fits in it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle import (  # bench/cycle.py's helpers, next to this script
    EXE,
    REPO,
    RULES,
    command,
    compile_bytecode,
    cpu_ticks_s,
    json_receiver,
    memory_mib,
    parse_seconds,
    seeded_account,
)

from watcher.providers.simkit.server import Traffic
from watcher.providers.telnyx.sim import SimAccount, SimServer, free_port

TARGET_WALL_S, TARGET_CPU_MS, TARGET_RSS_MB = 10.0, 1.5, 150.0


def key_of(index: int) -> str:
    return f"bench-key-{index:05d}-0123456789abcdef"


def write_config(base: Path, api_url: str, hook_port: int, interval: str, size: int) -> Path:
    (base / "rules.yaml").write_text(RULES)
    accounts = "".join(
        f"  - {{name: acct{i:05d}, api_key: 'env:BENCH_KEY_{i}', base_url: '{api_url}'}}\n"
        for i in range(size)
    )
    config = base / "config.yaml"
    config.write_text(
        f"accounts:\n{accounts}"
        f"poll: {{interval: {interval}}}\n"
        f"rules: [rules.yaml]\nstate: {{path: {base / 'state.db'}}}\n"
        f"notify: {{routes: {{ops: {{urls: ['json://127.0.0.1:{hook_port}/hook']}}}}}}\n"
        f"metrics: {{listen: '127.0.0.1:{free_port()}'}}\n"
        "log: {level: info, format: json}\n"
    )
    return config


def child_env(size: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHER_", "NOTIFY_"))}
    if "WATCHER_EVENT_LOOP" in os.environ:  # e.g. =asyncio, for a side-by-side of the loops
        env["WATCHER_EVENT_LOOP"] = os.environ["WATCHER_EVENT_LOOP"]
    env.update({f"BENCH_KEY_{i}": key_of(i) for i in range(size)})
    env["WATCHER_ALLOW_FAST_POLL"] = "1"
    return env


@dataclass
class CycleLog:
    """The child's `cycle.finished` events as they arrive (a thread reads its log)."""

    cycles: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                event = json.loads(line)
            except ValueError:
                event = {}
            with self.changed:
                if event.get("event") == "cycle.finished":
                    self.cycles.append(event)
                elif event.get("level") in ("warning", "error", "critical") or not event:
                    self.lines.append(line.rstrip())
                self.changed.notify_all()

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.cycles) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(self.lines[-5:])
                    raise TimeoutError(f"no {count}. cycle within {timeout:g}s\n{tail}")
                self.changed.wait(left)


@dataclass
class Row:
    size: int
    wall_median_s: float
    wall_max_s: float
    cycle_cpu_ms_per_account: float
    cpu_ms_per_account_cycle: float
    rss_mb: float
    hwm_mb: float
    requests_per_cycle: float
    connections_per_cycle: float
    max_in_flight: int
    warnings: int
    warning_lines: list[str]


def measure(size: int, args: argparse.Namespace, interval_s: float) -> Row:
    accounts = [seeded_account(key_of(i)) for i in range(size)]
    with (
        SimServer(
            accounts[0], accounts=accounts, latency=args.latency, jitter=args.jitter
        ) as server,
        json_receiver() as hook_port,
        tempfile.TemporaryDirectory() as tmp,
    ):
        config = write_config(Path(tmp), server.base_url, hook_port, args.interval, size)
        pin = ["taskset", "-c", _cpus(args.pin[1])] if args.pin else []  # execs: same pid
        proc = subprocess.Popen(
            pin + command(config, "run"),
            env=child_env(size),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        events = CycleLog()
        assert proc.stderr is not None
        reader = threading.Thread(target=events.read, args=(proc.stderr,), daemon=True)
        reader.start()
        try:
            timeout = interval_s * 2 + 120
            events.wait(args.warmup, timeout * args.warmup)
            cpu_before, before = sum(cpu_ticks_s(proc.pid)), _requests(accounts, server)
            events.wait(args.warmup + args.cycles, timeout * args.cycles)
            cpu_after, after = sum(cpu_ticks_s(proc.pid)), _requests(accounts, server)
            memory = memory_mib(proc.pid)
            measured = events.cycles[args.warmup : args.warmup + args.cycles]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
        walls = [float(e["duration_s"]) for e in measured]
        cycles = args.cycles
        return Row(
            size=size,
            wall_median_s=statistics.median(walls),
            wall_max_s=max(walls),
            cycle_cpu_ms_per_account=statistics.median(float(e["cpu_s"]) for e in measured)
            * 1000
            / size,
            cpu_ms_per_account_cycle=(cpu_after - cpu_before) * 1000 / (cycles * size),
            rss_mb=memory["VmRSS"] * 1.048576,
            hwm_mb=memory["VmHWM"] * 1.048576,
            requests_per_cycle=(after[0] - before[0]) / cycles,
            connections_per_cycle=(after[1] - before[1]) / cycles,
            max_in_flight=server.traffic.max_in_flight,
            warnings=len(events.lines),
            warning_lines=events.lines,
        )


def _requests(accounts: list[SimAccount], server: SimServer) -> tuple[int, int]:
    traffic: Traffic = server.traffic
    return sum(a.request_count() for a in accounts), traffic.connections


def combined(runs: list[Row]) -> Row:
    """The runs of one size as one row: medians, the worst wall and peak, all warnings."""
    med = statistics.median
    return Row(
        size=runs[0].size,
        wall_median_s=med(r.wall_median_s for r in runs),
        wall_max_s=max(r.wall_max_s for r in runs),
        cycle_cpu_ms_per_account=med(r.cycle_cpu_ms_per_account for r in runs),
        cpu_ms_per_account_cycle=med(r.cpu_ms_per_account_cycle for r in runs),
        rss_mb=med(r.rss_mb for r in runs),
        hwm_mb=max(r.hwm_mb for r in runs),
        requests_per_cycle=med(r.requests_per_cycle for r in runs),
        connections_per_cycle=med(r.connections_per_cycle for r in runs),
        max_in_flight=max(r.max_in_flight for r in runs),
        warnings=sum(r.warnings for r in runs),
        warning_lines=[line for r in runs for line in r.warning_lines],
    )


def print_table(runs: dict[int, list[Row]], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    added = f"{args.latency * 1000:g}" + (f" ± {args.jitter * 1000:g}" if args.jitter else "")
    print(
        f"account-watcher run, N Telnyx accounts at one simulator URL (+{added} ms"
        f" per request), balance + audit + webhook rules, interval {args.interval}, "
        f"{args.cycles} cycles after {args.warmup} warm-up"
        + (f", medians of {args.repeat} interleaved runs" if args.repeat > 1 else "")
        + (f", {args.ballast} KB of ballast per account" if args.ballast else "")
        + f"; {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
        + (
            f"simulator on CPU {_cpus(args.pin[0])}, daemon on CPU {_cpus(args.pin[1])}"
            if args.pin
            else "simulator and daemon on any CPU"
        )
    )
    head = (
        f"{'accounts':>8}  {'wall/cycle median (max)':>23}  {'CPU/account-cycle in cycle':>26}  "
        f"{'all':>8}  {'RSS (peak)':>12}  {'requests/cycle':>14}  {'conns/cycle':>11}  "
        f"{'max in flight':>13}  warnings"
    )
    print(head)
    rows = [combined(r) for r in runs.values()]
    for r in rows:
        wall = f"{r.wall_median_s:.2f} s ({r.wall_max_s:.2f})"
        cpus = [x.cycle_cpu_ms_per_account for x in runs[r.size]]
        spread = f" ({min(cpus):.2f}–{max(cpus):.2f})" if len(cpus) > 1 else ""
        cpu = f"{r.cycle_cpu_ms_per_account:.2f} ms{spread}"
        rss = f"{r.rss_mb:.0f} MB ({r.hwm_mb:.0f})"
        print(
            f"{r.size:>8}  {wall:>23}  {cpu:>26}  {r.cpu_ms_per_account_cycle:>5.2f} ms  "
            f"{rss:>12}  {r.requests_per_cycle:>14.0f}  {r.connections_per_cycle:>11.0f}  "
            f"{r.max_in_flight:>13}  {r.warnings}"
        )
    for a, b in itertools.pairwise(rows):
        if b.size > a.size:
            c_a, c_b = a.cycle_cpu_ms_per_account * a.size, b.cycle_cpu_ms_per_account * b.size
            marginal = (c_b - c_a) / (b.size - a.size)
            print(f"marginal CPU per account, {a.size} → {b.size}: {marginal:.2f} ms per cycle")
    print(
        f"targets at 1,000: wall < {TARGET_WALL_S:g} s, CPU ≤ {TARGET_CPU_MS:g} ms per "
        f"account-cycle, RSS ≤ {TARGET_RSS_MB:g} MB, per-account cost flat across sizes"
    )


def _pinned() -> tuple[set[int], set[int]]:
    """This process (the simulator) onto the first usable CPU; (its CPUs, the daemon's)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        raise SystemExit("--pin needs two CPUs or more and taskset (util-linux)")
    mine, theirs = {cpus[0]}, set(cpus[1:])
    os.sched_setaffinity(0, mine)
    return mine, theirs


def _cpus(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="account counts, comma-separated")
    parser.add_argument("--cycles", type=int, default=3, help="steady-state cycles measured")
    parser.add_argument("--warmup", type=int, default=1, help="cycles skipped first")
    parser.add_argument("--interval", default="60s", help="poll.interval (with a unit)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added per request")
    parser.add_argument("--jitter", type=float, default=0.0, help="± seconds around --latency")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every size, interleaved")
    parser.add_argument("--ballast", type=int, help="KB of inert memory kept per account")
    parser.add_argument("--exe", help="the account-watcher to measure (default: this venv's)")
    parser.add_argument(
        "--pin", action="store_true", help="the simulator on the first CPU, the daemon on the rest"
    )
    args = parser.parse_args()
    if args.exe:
        EXE[:] = [args.exe]
    if args.ballast:
        EXE[:] = [sys.executable, str(Path(__file__).resolve().parent / "ballast.py")]
        os.environ["BENCH_BALLAST_KB"] = str(args.ballast)
    args.pin = _pinned() if args.pin else None
    interval_s = parse_seconds(args.interval)
    compile_bytecode()
    runs: dict[int, list[Row]] = {int(s): [] for s in args.sizes.split(",")}
    for turn in range(args.repeat):
        for size, done in runs.items():
            done.append(measure(size, args, interval_s))
            row = done[-1]
            cpu = f"{row.cycle_cpu_ms_per_account:.2f} ms"
            print(f"  run {turn + 1}: {size} accounts, {cpu} in cycle", file=sys.stderr, flush=True)
            for line in row.warning_lines[:3]:
                print(f"    {line[:300]}", file=sys.stderr)
    print_table(runs, args)


if __name__ == "__main__":
    main()
