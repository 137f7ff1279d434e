"""`log.format: auto` follows stderr, where the logs go, whatever stdout is: a real
`once` with a pseudo-terminal on one stream and a pipe on the other."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cli_env, write_config


def read_all(fd: int) -> str:
    data = b""
    while select.select([fd], [], [], 2.0)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        data += chunk
    return data.decode()


def once(config: Path, *, tty: str) -> tuple[str, str]:
    """Run `once` with `tty` ("stderr" or "stdout") on a pseudo-terminal; out: (stdout, stderr)."""
    master, slave = os.openpty()
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, tty: slave}
    child = subprocess.Popen(
        [sys.executable, "-m", "watcher", "--config", str(config), "once"],
        stdin=subprocess.DEVNULL,
        env=cli_env(),
        cwd=REPO,
        **streams,  # type: ignore[call-overload]
    )
    os.close(slave)
    piped = child.stdout if tty == "stderr" else child.stderr
    assert piped is not None
    text = piped.read().decode()
    on_tty = read_all(master)
    os.close(master)
    assert child.wait(timeout=60) == 0
    return (on_tty, text) if tty == "stdout" else (text, on_tty)


@pytest.mark.parametrize("tty", ["stderr", "stdout"])
def test_auto_log_format_follows_stderr(tmp_path: Path, tty: str) -> None:
    # nobody listens on port 9: the sources fail, so there are log lines to look at
    config = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        ["json://127.0.0.1:9/x"],
        "rules: []\n",
        extra="log: {format: auto, level: info}\n",
    )
    stdout, stderr = once(config, tty=tty)
    assert "cycle at " in stdout
    lines = [line for line in stderr.splitlines() if "cycle.finished" in line]
    assert len(lines) == 1
    if tty == "stderr":  # a person reads the logs: console lines, never JSON
        assert not lines[0].lstrip().startswith("{")
    else:  # logs go to a pipe or file: JSON, even though stdout is a terminal
        assert json.loads(lines[0])["event"] == "cycle.finished"
