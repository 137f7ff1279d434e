"""`run` with a web address loads the status page's modules (its models, the state view,
the chart) at the first page request, not before READY=1: a `/metrics`-only listener
never loads them (issue 9's exec → READY=1 and RSS targets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO, cli_env, write_config

LAZY_WEB = """
import contextlib, sys, urllib.request
from pathlib import Path

from watcher.cli import webserve
from watcher.service.wiring import load_runtime
import os

config, state = Path(sys.argv[1]), Path(sys.argv[2])
runtime = load_runtime(config, os.environ)
metrics = webserve.metrics_for(runtime)
page = ("watcher.service.webmodel", "watcher.service.webview", "watcher.service.webchart")
with contextlib.ExitStack() as stack:
    server = webserve.serve(lambda: runtime, state, metrics, stack)
    print("serving", any(name in sys.modules for name in page))
    for path in ("/metrics", "/healthz", "/"):
        try:
            status = urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}").status
        except urllib.error.HTTPError as exc:  # the page of an empty state may say 503
            status = exc.code
        print(path, status < 500 or status == 503, all(name in sys.modules for name in page))
"""


def test_the_page_modules_load_at_the_first_request_not_when_serving(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "http://127.0.0.1:9/v2",
        ["json://127.0.0.1:9/hook"],
        "rules:\n  - {name: low, kind: balance, below: 10}\n",
        extra="web:\n  listen: 127.0.0.1:0\n",
    )
    done = subprocess.run(
        [sys.executable, "-c", LAZY_WEB, str(config), str(tmp_path / "state.db")],
        env=cli_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    printed = [line for line in done.stdout.splitlines() if line.startswith(("serving", "/"))]
    assert printed == [
        "serving False",
        "/metrics True False",
        "/healthz True False",
        "/ True True",
    ]
