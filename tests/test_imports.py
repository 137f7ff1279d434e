"""What a fresh interpreter loads for the daemon: nothing it never uses (each module
costs start-up CPU and resident memory for the life of the process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

UNUSED = ("click", "pygments", "rich")  # httpx's own command line client pulls them in


@pytest.mark.parametrize("module", ["watcher.providers.telnyx.client", "watcher.cli.main"])
def test_httpx_command_line_client_is_not_loaded(module: str) -> None:
    code = (
        f"import sys, {module}, httpx\n"
        "assert httpx.AsyncClient and httpx.Response(200).status_code == 200\n"
        f"print(' '.join(m for m in {UNUSED!r} if sys.modules.get(m) is not None))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == []
