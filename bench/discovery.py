"""Discovery cost against a manager with N managed accounts on the Telnyx simulator,
one balance rule on `main/*`; every tenth child has `rollup_billing: true` (not polled
for a balance).

Table 1, `once` (a fresh process: it lists): per N the wall time and CPU (user +
system) of the `account-watcher once` child, the requests the simulator received (the
listing's pages, one `GET /managed_accounts/{id}` per child, one `/balance` per polled
account) and the listing's pages.

Table 2, `run` (with `--run-cycles K`, at a 15 s interval, fast poll allowed): per cycle
its `duration_s`, its requests, the child's CPU in that cycle and its VmRSS: the first
cycle lists, the next ones poll the children only.

    .venv/bin/python bench/discovery.py [--sizes 10,100,500] [--latency 0.0]
                                        [--run-cycles 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from watcher.providers.telnyx.sim import SimAccount, SimServer

REPO = Path(__file__).resolve().parent.parent
MANAGER_KEY = "KEYbench-manager-0123456789abcdef"
RULES = 'rules:\n  - {name: low, kind: balance, accounts: ["main/*"], below: {warning: 20}}\n'


def _config(folder: Path, base_url: str) -> Path:
    (folder / "rules.yaml").write_text(RULES)
    path = folder / "config.yaml"
    path.write_text(
        "accounts:\n"
        f"  - {{name: main, api_key: 'env:TELNYX_API_KEY', base_url: '{base_url}',"
        " managed_accounts: true}\n"
        "poll: {interval: 60s, timeout: 10s}\nrules: [rules.yaml]\n"
        f"state: {{path: {folder / 'state.db'}}}\n"
        "notify: {routes: {ops: {urls: ['json://127.0.0.1:9/']}}}\n"
    )
    return path


def _once(config: Path) -> tuple[float, float, str]:
    env = _env()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "--config", str(config), "once"],
        capture_output=True, text=True, env=env, cwd=REPO, check=False,
    )  # fmt: skip
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"once failed: {done.stderr.strip()[-500:]}")
    return wall, cpu, done.stdout


def _reseller(size: int) -> tuple[SimAccount, list[SimAccount]]:
    manager = SimAccount(api_key=MANAGER_KEY)
    children = [
        SimAccount(api_key=f"KEYbench-child-{i:05d}-0123456789", balance="500.00")
        for i in range(size)
    ]
    for i, child in enumerate(children):
        manager.managed.add(child, email=f"c{i:05d}@example.com", rollup_billing=i % 10 == 0)
    return manager, children


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(TELNYX_API_KEY=MANAGER_KEY, WATCHER_LOG__LEVEL="warning")
    return env


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def run_cycles(size: int, latency: float, cycles: int) -> list[dict[str, object]]:
    """`cycles` cycles of a real `run`, read from its `cycle.finished` log events."""
    manager, children = _reseller(size)
    rows: list[dict[str, object]] = []
    with (
        SimServer(manager, accounts=[manager, *children], latency=latency) as server,
        tempfile.TemporaryDirectory() as folder,
    ):
        path = _config(Path(folder), server.base_url)
        path.write_text(path.read_text().replace("interval: 60s", "interval: 15s"))
        env = {**_env(), "WATCHER_LOG__LEVEL": "info", "WATCHER_LOG__FORMAT": "json"}
        env["WATCHER_ALLOW_FAST_POLL"] = "1"
        child = subprocess.Popen(
            [sys.executable, "-m", "watcher", "--config", str(path), "run"],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stderr is not None
        cpu = 0.0
        for line in child.stderr:
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("event") != "cycle.finished":
                continue
            now = _cpu_s(child.pid)
            rows.append(
                {
                    "children": size,
                    "cycle": len(rows) + 1,
                    "wall_s": event["duration_s"],
                    "requests": event["requests"],
                    "cpu_s": round(now - cpu, 2),
                    "rss_mib": _rss_mib(child.pid),
                }
            )
            cpu = now
            if len(rows) == cycles:
                break
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    return rows


def measure(size: int, latency: float) -> dict[str, object]:
    manager, children = _reseller(size)
    with (
        SimServer(manager, accounts=[manager, *children], latency=latency) as server,
        tempfile.TemporaryDirectory() as folder,
    ):
        wall, cpu, out = _once(_config(Path(folder), server.base_url))
        received = sum(a.request_count() for a in [manager, *children])
        pages = manager.request_count("/managed_accounts")
    requests = int(out.split(": ", 1)[1].split(" API requests")[0])
    return {
        "children": size,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_child": round(1000 * cpu / size, 2),
        "requests": received,
        "cycle_requests": requests,
        "list_pages": pages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,500")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--run-cycles", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    _table([measure(n, args.latency) for n in sizes])
    if args.run_cycles:
        print()
        _table([row for n in sizes for row in run_cycles(n, args.latency, args.run_cycles)])
    print(json.dumps({"latency_s": args.latency}))


def _table(rows: list[dict[str, object]]) -> None:
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row[k]) for k in keys))


if __name__ == "__main__":
    main()
