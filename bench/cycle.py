"""The daemon as systemd runs it: exec → READY=1, CPU per steady-state cycle, RSS.

Starts the real `account-watcher run` (a child process) against the loopback simulator
with three sources (balance, audit, webhook rules), `/metrics` on, and a real
AF_UNIX/SOCK_DGRAM `NOTIFY_SOCKET` (as systemd gives it). Measures:

- exec → READY=1: from just before the exec to the arrival of the datagram, median of
  `--starts` starts (the first on a fresh state, the others on the same state), and the
  CPU the process used by then, alone and with the children it reaped (the URL check);
- CPU per cycle: the child's utime + stime from /proc/PID/stat between the `STATUS=`
  datagram of cycle `--warmup` and that of cycle `--warmup + --cycles`, divided by
  `--cycles` (so the idle time between cycles at `--interval` is included), checked
  against the per-thread nanosecond counters of /proc/PID/task/*/schedstat;
- RSS: VmRSS (and the peak VmHWM) of the child after the last measured cycle;
- wall time of the commands that need no notification (`check`, `status`, `schema`).

The package's bytecode is compiled first, as `pip install` does for the unit's install
(a checkout's editable install under PYTHONDONTWRITEBYTECODE would compile every module
at every start). `PYTHONPATH=DIR` measures another copy of the package (e.g. `git archive
main` unpacked in DIR) with the same script, for a before/after.

    .venv/bin/python bench/cycle.py [--cycles 40] [--interval 1s] [--starts 3] [--exe PATH]

Targets (issue 9): ≤ 5 ms CPU per cycle, ≤ 60 MiB RSS, ≤ 0.6 s exec → READY=1.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import watcher
from watcher.providers.telnyx.sim import SimAccount, SimServer, free_port

REPO = Path(__file__).resolve().parent.parent
API_KEY = "bench-key-0123456789abcdef"
TICKS = os.sysconf("SC_CLK_TCK")
TARGET_CPU_MS, TARGET_RSS_MIB, TARGET_READY_S = 5.0, 60.0, 0.6

RULES = """\
rules:
  - {name: low-credit, kind: balance, below: {warning: 100, critical: 50}}
  - {name: config-change, kind: audit, match: {change_made_by: organization_member}}
  - {name: spike, kind: webhook_failures, window: 15m, at_least: 10, ratio: 0.25}
"""


# ---------------------------------------------------------------------------- fixtures


@dataclass
class NotifySocket:
    """sd_notify datagrams as they arrive: (monotonic time, fields)."""

    path: str
    received: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, key: str, count: int, timeout: float) -> tuple[float, dict[str, str]]:
        """The `count`-th datagram carrying `key` (1-based)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                hits = [d for d in self.received if key in d[1]]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {count}. {key} datagram within {timeout:g}s")
                self.changed.wait(left)


@contextlib.contextmanager
def notify_socket() -> Iterator[NotifySocket]:
    directory = tempfile.mkdtemp(dir="/tmp")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.05)
    state = NotifySocket(path)
    running = True

    def receive() -> None:
        while running:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            at = time.monotonic()
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            with state.changed:
                state.received.append((at, fields))
                state.changed.notify_all()

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        running = False
        thread.join(timeout=2)
        sock.close()
        os.unlink(path)
        os.rmdir(directory)


@contextlib.contextmanager
def json_receiver() -> Iterator[int]:
    """A local endpoint for apprise's json:// URL (nothing is expected in steady state)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


def seeded_account(api_key: str = API_KEY) -> SimAccount:
    """Audit events inside the overlap window (re-read every cycle, all seen) and webhook
    deliveries inside the rule's window, none of which makes a rule fire."""
    account = SimAccount(api_key=api_key, balance="500.00")
    now = datetime.now(UTC)
    for i in range(30):
        account.add_audit_event(created_at=now - timedelta(seconds=10 * i))
    for i in range(40):
        account.add_webhook_delivery(status="delivered", started_at=now - timedelta(seconds=i))
    for i in range(5):
        account.add_webhook_delivery(started_at=now - timedelta(seconds=20 * i))
    return account


def write_config(
    base: Path, api_url: str, hook_port: int, interval: str, name: str = "config.yaml"
) -> Path:
    (base / "rules.yaml").write_text(RULES)
    config = base / name
    config.write_text(
        f"accounts: [{{name: main, api_key: 'env:BENCH_KEY', base_url: '{api_url}'}}]\n"
        f"poll: {{interval: {interval}}}\n"
        f"rules: [rules.yaml]\nstate: {{path: {base / 'state.db'}}}\n"
        f"notify: {{routes: {{ops: {{urls: ['json://127.0.0.1:{hook_port}/hook']}}}}}}\n"
        f"metrics: {{listen: '127.0.0.1:{free_port()}'}}\n"
        "log: {level: info, format: json}\n"
    )
    return config


def child_env(notify: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHER_", "NOTIFY_"))}
    if "WATCHER_EVENT_LOOP" in os.environ:  # e.g. =asyncio, for a side-by-side of the loops
        env["WATCHER_EVENT_LOOP"] = os.environ["WATCHER_EVENT_LOOP"]
    env.update(BENCH_KEY=API_KEY, WATCHER_ALLOW_FAST_POLL="1")
    if notify is not None:
        env["NOTIFY_SOCKET"] = notify
    return env


EXE = [str(Path(sys.executable).parent / "account-watcher")]


def command(config: Path, *args: str) -> list[str]:
    return [*EXE, "--config", str(config), *args]


# ---------------------------------------------------------------------------- /proc


def cpu_ticks_s(pid: int) -> tuple[float, float]:
    """(utime, stime) of `pid` in seconds (clock-tick resolution)."""
    fields = _stat_fields(pid)
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS  # fields 14 and 15 of stat(5)


def children_cpu_s(pid: int) -> float:
    """cutime + cstime of `pid`: the CPU of its children it has waited for (`run`'s URL
    check, watcher/cli/urlcheck.py), in seconds."""
    fields = _stat_fields(pid)
    return (int(fields[13]) + int(fields[14])) / TICKS  # fields 16 and 17 of stat(5)


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_sched_s(pid: int) -> float:
    """On-CPU time of every thread of `pid` in seconds (nanosecond counters)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def memory_mib(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


# ---------------------------------------------------------------------------- runs


@dataclass
class Run:
    ready_s: float
    ready_cpu_s: float
    ready_children_cpu_s: float
    user_ms: float = 0.0
    sys_ms: float = 0.0
    sched_ms: float = 0.0
    idle_ms_per_s: float = 0.0
    rss_mib: float = 0.0
    hwm_mib: float = 0.0

    @property
    def cpu_ms(self) -> float:
        return self.user_ms + self.sys_ms


def start_and_measure(config: Path, *, cycles: int, warmup: int, interval_s: float) -> Run:
    """One `run` process: time to READY=1; with `cycles`, CPU per cycle and RSS."""
    with notify_socket() as notify:
        started = time.monotonic()
        proc = subprocess.Popen(
            command(config, "run"),
            env=child_env(notify.path),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            at, _ = notify.wait("READY", 1, timeout=30)
            run = Run(
                ready_s=at - started,
                ready_cpu_s=sum(cpu_ticks_s(proc.pid)),
                ready_children_cpu_s=children_cpu_s(proc.pid),
            )
            if cycles:
                timeout = interval_s * 3 + 10
                notify.wait("STATUS", 1 + warmup, timeout=timeout * (1 + warmup))
                (user, system), sched = cpu_ticks_s(proc.pid), cpu_sched_s(proc.pid)
                at, _ = notify.wait("STATUS", 1 + warmup + cycles, timeout=timeout * cycles)
                user_end, system_end = cpu_ticks_s(proc.pid)
                run.user_ms = (user_end - user) * 1000 / cycles
                run.sys_ms = (system_end - system) * 1000 / cycles
                run.sched_ms = (cpu_sched_s(proc.pid) - sched) * 1000 / cycles
                memory = memory_mib(proc.pid)
                run.rss_mib, run.hwm_mib = memory["VmRSS"], memory["VmHWM"]
                run.idle_ms_per_s = idle_cpu(proc.pid, at, interval_s)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return run


def idle_cpu(pid: int, cycle_end: float, interval_s: float) -> float:
    """CPU ms per second of `pid` between two cycles (from a cycle's end + 10% of the
    interval to 80% of it: the loop, the metrics thread, nothing polled)."""
    begin = cycle_end + interval_s * 0.1
    end = cycle_end + interval_s * 0.8
    time.sleep(max(0.0, begin - time.monotonic()))
    first, since = cpu_sched_s(pid), time.monotonic()
    time.sleep(max(0.0, end - time.monotonic()))
    return (cpu_sched_s(pid) - first) * 1000 / (time.monotonic() - since)


def command_wall_s(config: Path, args: list[str], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.monotonic()
        subprocess.run(
            command(config, *args),
            env=child_env(None),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        times.append(time.monotonic() - started)
    return statistics.median(times)


def compile_bytecode() -> None:
    """The package's modules compiled to `__pycache__`, as `pip install` does for the
    unit's /opt install. A checkout's editable install has none, and with
    PYTHONDONTWRITEBYTECODE set (as in some shells) every start would compile ~80 modules
    from source: ~0.1 s that no installed daemon pays."""
    compileall.compile_dir(Path(watcher.__file__).parent, quiet=1)


def parse_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    raise SystemExit(f"--interval needs a unit (e.g. 1s): {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=40, help="cycles measured")
    parser.add_argument("--warmup", type=int, default=3, help="cycles skipped first")
    parser.add_argument("--interval", default="1s", help="poll.interval (with a unit)")
    parser.add_argument("--starts", type=int, default=3, help="starts timed to READY=1")
    parser.add_argument(
        "--exe",
        help="the account-watcher to measure (default: this venv's one)",
    )
    args = parser.parse_args()
    if args.exe:
        EXE[:] = [args.exe]
    interval_s = parse_seconds(args.interval)
    compile_bytecode()
    account = seeded_account()
    with (
        SimServer(account) as server,
        json_receiver() as hook_port,
        tempfile.TemporaryDirectory() as tmp,
    ):
        config = write_config(Path(tmp), server.base_url, hook_port, args.interval)
        runs = [
            start_and_measure(config, cycles=0, warmup=0, interval_s=interval_s)
            for _ in range(max(args.starts - 1, 0))
        ]
        steady = start_and_measure(
            config, cycles=args.cycles, warmup=args.warmup, interval_s=interval_s
        )
        runs.append(steady)
        requests = account.request_count()
        # `check` and `status` take no fast poll yet (issue 9, defect 11): a 10s copy
        slow = write_config(Path(tmp), server.base_url, hook_port, "10s", "config-10s.yaml")
        walls = {
            name: command_wall_s(slow, argv)
            for name, argv in (("check", ["check"]), ("status", ["status"]), ("schema", ["schema"]))
        }
    ready = statistics.median(r.ready_s for r in runs)
    ready_cpu = statistics.median(r.ready_cpu_s for r in runs)
    with_children = statistics.median(r.ready_cpu_s + r.ready_children_cpu_s for r in runs)
    rows = [
        ("CPU per cycle (/proc/PID/stat)", f"{steady.cpu_ms:.2f} ms", f"≤ {TARGET_CPU_MS:g} ms"),
        ("  of which user / system", f"{steady.user_ms:.2f} / {steady.sys_ms:.2f} ms", ""),
        ("CPU per cycle (schedstat, ns)", f"{steady.sched_ms:.2f} ms", f"≤ {TARGET_CPU_MS:g} ms"),
        ("CPU between cycles, per second", f"{steady.idle_ms_per_s:.2f} ms", ""),
        ("RSS after the cycles (VmRSS)", f"{steady.rss_mib:.1f} MiB", f"≤ {TARGET_RSS_MIB:g} MiB"),
        ("peak RSS (VmHWM)", f"{steady.hwm_mib:.1f} MiB", ""),
        ("exec → READY=1 (median)", f"{ready:.3f} s", f"≤ {TARGET_READY_S:g} s"),
        ("exec → READY=1 (each start)", " ".join(f"{r.ready_s:.2f}" for r in runs), ""),
        ("CPU used by READY=1 (median)", f"{ready_cpu:.3f} s", ""),
        ("  each start", " ".join(f"{r.ready_cpu_s:.2f}" for r in runs), ""),
        ("  with the children reaped (median)", f"{with_children:.3f} s", ""),
        *((f"`{name}` wall time (median of 3)", f"{s:.3f} s", "") for name, s in walls.items()),
    ]
    load = os.getloadavg()[0]
    print(
        f"account-watcher run: 3 sources, interval {args.interval}, /metrics on, "
        f"{args.cycles} cycles after {args.warmup} warm-up; {requests} API requests in all; "
        f"bytecode compiled as pip install does; load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  {'value':>18}  target")
    for name, value, target in rows:
        print(f"{name:{width}}  {value:>18}  {target}")


if __name__ == "__main__":
    main()
