"""Discovery cost: one `once` (a fresh process: it lists) against a manager with N
managed accounts on the Telnyx simulator, one balance rule on `main/*`.

Per N: the wall time and CPU (user + system) of the `account-watcher once` child
process, the requests the simulator received (the listing's pages, one
`GET /managed_accounts/{id}` per child, one `/balance` per polled account) and the
cycle's own count. Every tenth child has `rollup_billing: true` (not polled for a
balance).

    .venv/bin/python bench/discovery.py [--sizes 10,100,500] [--latency 0.0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env.update(TELNYX_API_KEY=MANAGER_KEY, WATCHER_LOG__LEVEL="warning")
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


def measure(size: int, latency: float) -> dict[str, object]:
    manager = SimAccount(api_key=MANAGER_KEY)
    children = [
        SimAccount(api_key=f"KEYbench-child-{i:05d}-0123456789", balance="500.00")
        for i in range(size)
    ]
    for i, child in enumerate(children):
        manager.managed.add(child, email=f"c{i:05d}@example.com", rollup_billing=i % 10 == 0)
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
    args = parser.parse_args()
    rows = [measure(int(n), args.latency) for n in args.sizes.split(",")]
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row[k]) for k in keys))
    print(json.dumps({"latency_s": args.latency}))


if __name__ == "__main__":
    main()
