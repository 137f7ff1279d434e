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


def _loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {modules!r} if m in sys.modules))\n"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_finding_the_providers_imports_no_shared_package() -> None:
    """`run` and `check` ask the registry which providers there are; the simulators' kit
    (a shared package, http.server and all) is not imported to find out."""
    code = (
        "from watcher.providers import registry\n"
        "assert 'telnyx' in registry.capabilities() and 'telnyx' in registry.names()\n"
    )
    shared = ("watcher.providers.simkit", "http.server", "socketserver")
    assert _loaded_after(code, shared) == []


def _collections_and_collector(argv: list[str]) -> tuple[int, bool]:
    """Run the CLI's entry point with `argv` in a fresh interpreter: the cyclic
    collections that ran once the command line's modules began to load, and whether the
    collector is on at exit."""
    code = (
        "import atexit, gc, sys\n"
        "runs = []\n"
        "def seen(phase, info):\n"
        "    if phase == 'start' and 'watcher.cli.main' in sys.modules:\n"
        "        runs.append(info)\n"
        "gc.callbacks.append(seen)\n"
        "atexit.register(lambda: print('GC', len(runs), gc.isenabled()))\n"
        f"sys.argv = ['account-watcher', *{argv!r}]\n"
        "from watcher.__main__ import main\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    _, runs, enabled = result.stdout.splitlines()[-1].split()
    return int(runs), enabled == "True"


def test_no_cyclic_collection_while_the_modules_load() -> None:
    """~90,000 objects are created at start-up and all of them live: the collector's
    passes over them were ~6% of the CPU to READY=1."""
    assert _collections_and_collector(["--help"])[0] == 0


@pytest.mark.parametrize("argv", [["schema"], ["--config", "/nonexistent.yaml", "check"]])
def test_the_collector_is_on_again_for_the_command(argv: list[str]) -> None:
    assert _collections_and_collector(argv)[1] is True
