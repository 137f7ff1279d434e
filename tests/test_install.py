"""The server install: the unit file's contract, the README's steps run in a temp root
(as far as a machine without systemd as PID 1 allows), and the service started the way
systemd starts it: the unit's ExecStart, Environment=, credentials directory, state
directory, notify socket and watchdog, then `ExecReload=` and SIGTERM."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import API_KEY, REPO, Receiver, wait_for
from notify_socket import Listener, listening

from watcher.providers.telnyx.sim import SimServer

UNIT = REPO / "systemd" / "account-watcher.service"
README = REPO / "README.md"
EXAMPLE = REPO / "config.yaml.example"
CONSOLE_SCRIPT = Path(sys.executable).parent / "account-watcher"


def unit_settings() -> dict[str, list[str]]:
    """`Key` → every value it is given in the unit (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


def readme_install() -> str:
    text = README.read_text()
    start = text.index("## Install on a server")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def shell_commands(section: str) -> list[str]:
    """The commands of the first ```sh block, continuation lines joined, comments cut."""
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    joined = block.group(1).replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        command = line.split(" #", 1)[0].strip()
        if command and not command.startswith("#"):
            commands.append(command)
    return commands


# ---------------------------------------------------------------------------- the unit


EXPECTED = {
    "Type": "notify",
    "NotifyAccess": "main",
    "ExecStart": "/opt/account-watcher/bin/account-watcher run",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "Restart": "on-failure",
    "DynamicUser": "yes",
    "StateDirectory": "account-watcher",
    "ConfigurationDirectory": "account-watcher",
    "LoadCredential": "telnyx_api_key:/etc/account-watcher/telnyx_api_key",
    "Environment": "WATCHER_CONFIG=/etc/account-watcher/config.yaml",
    "SyslogIdentifier": "account-watcher",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "ProcSubset": "pid",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "PrivateUsers": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter": "@system-service",
    "MemoryDenyWriteExecute": "yes",
    "LockPersonality": "yes",
    "RestrictNamespaces": "yes",
    "UMask": "0077",
    "TasksMax": "128",
}


@pytest.mark.parametrize(("key", "value"), sorted(EXPECTED.items()))
def test_unit_sets(key: str, value: str) -> None:
    assert value in unit_settings().get(key, []), f"{key}={value} missing in {UNIT}"


def test_unit_has_a_watchdog_and_a_memory_limit() -> None:
    settings = unit_settings()
    assert re.fullmatch(r"\d+s", settings["WatchdogSec"][0])
    assert re.fullmatch(r"\d+[KMG]", settings["MemoryMax"][0])
    assert "Documentation" not in settings  # man: pages break `systemd-analyze verify`


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_exposure_score_at_most_1_1() -> None:
    result = subprocess.run(
        ["sh", str(REPO / "systemd" / "check-unit.sh"), str(UNIT), str(CONSOLE_SCRIPT)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"exposure (\d+\.\d+)", result.stdout)
    if match is None:  # an old systemd-analyze without --offline: the script skipped
        pytest.skip(result.stdout.strip())
    assert float(match.group(1)) <= 1.1


# ---------------------------------------------------------------------------- README


def test_readme_install_agrees_with_the_unit_and_the_example() -> None:
    section = readme_install()
    settings = unit_settings()
    exe = settings["ExecStart"][0].split()[0]
    venv = str(Path(exe).parent.parent)
    config = settings["Environment"][0].removeprefix("WATCHER_CONFIG=")
    name, _, credential_file = settings["LoadCredential"][0].partition(":")
    config_dir = f"/etc/{settings['ConfigurationDirectory'][0]}"
    for needed in (
        f"python3 -m venv {venv}",
        f"{venv}/bin/pip install",
        f"{config_dir}/rules",
        f"config.yaml.example {config}",
        f"{credential_file}\n",
        f"credential:{name}",
        f"CREDENTIALS_DIRECTORY={config_dir}",
        "systemd/account-watcher.service /etc/systemd/system/",
        "systemctl enable --now account-watcher",
        "systemctl reload account-watcher",
        "journalctl -u account-watcher -p err",
    ):
        assert needed in section, needed
    assert Path(credential_file).parent == Path(config).parent == Path(config_dir)
    example = yaml.safe_load(EXAMPLE.read_text())
    assert example["rules"] == ["rules/*.yaml"]  # = /etc/account-watcher/rules
    assert "state" not in example or not example["state"]  # default: $STATE_DIRECTORY


# ---------------------------------------------------------------------------- install


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A temp root with the program "installed" in /opt: this venv's console script."""
    exe = tmp_path / "opt" / "account-watcher" / "bin" / "account-watcher"
    exe.parent.mkdir(parents=True)
    exe.symlink_to(CONSOLE_SCRIPT)
    (tmp_path / "etc" / "systemd" / "system").mkdir(parents=True)
    yield tmp_path


def _in_root(command: str, root: Path) -> str:
    command = command.removeprefix("sudo ")
    for prefix in ("/etc/", "/opt/", "/var/"):
        command = command.replace(f" {prefix}", f" {root}{prefix}")
        command = command.replace(f"={prefix}", f"={root}{prefix}")
        if command.startswith(prefix):
            command = f"{root}{command}"
    return command


def _run(command: str, root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHER_", "TELNYX"))}
    return subprocess.run(  # noqa: S602
        _in_root(command, root),
        shell=True,  # the README's own command lines, globs included
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**environ, **env},
        timeout=60,
        check=False,
    )


def _install(root: Path) -> list[str]:
    """Run the README's install steps that need neither a venv build nor systemd."""
    commands = shell_commands(readme_install())
    done = []
    for command in commands:
        words = shlex.split(command.removeprefix("sudo "))
        if words[0] == "install":
            result = _run(command, root)
            assert result.returncode == 0, (command, result.stderr)
            done.append(command)
    return done


def test_install_steps_then_check_with_the_credential(root: Path) -> None:
    done = _install(root)
    assert any("config.yaml.example" in c for c in done)
    etc = root / "etc" / "account-watcher"
    config = etc / "config.yaml"
    assert (etc / "rules" / "balance.yaml").exists()
    assert (root / "etc" / "systemd" / "system" / "account-watcher.service").read_text() == (
        UNIT.read_text()
    )
    credential = etc / "telnyx_api_key"
    assert credential.stat().st_mode & 0o777 == 0o600
    credential.write_text(API_KEY + "\n")  # sudoedit
    edited = config.read_text().replace(  # sudoedit: the edit the README's comment asks for
        "api_key: env:TELNYX_API_KEY", "api_key: credential:telnyx_api_key"
    )
    assert "credential:telnyx_api_key" in edited
    config.write_text(edited)

    (check,) = [c for c in shell_commands(readme_install()) if c.endswith(" check")]
    result = _run(check, root)
    assert result.returncode == 0, result.stderr
    assert "ok: " in result.stdout
    assert "telnyx_api_key" not in result.stderr  # resolved from CREDENTIALS_DIRECTORY

    without = _run(check.replace("CREDENTIALS_DIRECTORY=", "NOT_CREDENTIALS="), root)
    assert "telnyx_api_key" in without.stderr  # ... and only from there


def test_the_service_as_systemd_starts_it(root: Path, sim: SimServer, receiver: Receiver) -> None:
    _install(root)
    etc = root / "etc" / "account-watcher"
    config = etc / "config.yaml"
    document = yaml.safe_load(config.read_text())
    document["accounts"][0]["api_key"] = "credential:telnyx_api_key"
    document["accounts"][0]["base_url"] = sim.base_url
    document["notify"] = {"routes": {"ops": {"urls": ["credential:hook_url"]}}}
    document.pop("metrics", None)
    config.write_text(yaml.safe_dump(document))
    (etc / "telnyx_api_key").write_text(API_KEY + "\n")
    (etc / "hook_url").write_text(receiver.url + "\n")

    settings = unit_settings()
    credentials = root / "run" / "credentials" / "account-watcher.service"  # systemd copies
    credentials.mkdir(parents=True)
    for line in [*settings["LoadCredential"], f"hook_url:{etc / 'hook_url'}"]:
        name, _, source = line.partition(":")
        source_path = Path(source) if source.startswith(str(root)) else root / source.lstrip("/")
        shutil.copy(source_path, credentials / name)
    state = root / "var" / "lib" / settings["StateDirectory"][0]
    state.mkdir(parents=True)
    key, _, value = settings["Environment"][0].partition("=")
    watchdog_usec = str(int(settings["WatchdogSec"][0].removesuffix("s")) * 1_000_000)

    with listening() as notify:
        process = _start_service(
            settings["ExecStart"][0],
            root,
            {
                key: _in_root(f" {value}", root).strip(),
                "CREDENTIALS_DIRECTORY": str(credentials),
                "STATE_DIRECTORY": str(state),
                "NOTIFY_SOCKET": notify.path,
                "WATCHDOG_USEC": watchdog_usec,
            },
        )
        try:
            _service_lifecycle(process, notify, settings, sim, receiver)
        finally:
            if process.poll() is None:
                process.kill()
            _, err = process.communicate(timeout=10)
        assert API_KEY not in err
        assert process.returncode == 0, err
    assert (state / "state.db").exists()


def _start_service(exec_start: str, root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHER_", "TELNYX"))}
    environ.update(env)
    return subprocess.Popen(
        shlex.split(_in_root(exec_start, root)),
        cwd="/",
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _service_lifecycle(
    process: subprocess.Popen[str],
    notify: Listener,
    settings: dict[str, list[str]],
    sim: SimServer,
    receiver: Receiver,
) -> None:
    notify.wait(lambda: len(notify.statuses()) >= 2)  # READY's, then the first cycle's
    assert notify.received[0].fields["READY"] == "1"
    assert notify.statuses()[1].startswith("0 firing, 0 source errors")  # the key worked
    assert notify.with_field("WATCHDOG", "1")

    reload = settings["ExecReload"][0].replace("$MAINPID", str(process.pid))
    sent = time.monotonic()
    subprocess.run(shlex.split(reload), check=True, timeout=10)
    notify.wait(lambda: [d for d in notify.after(sent) if d.fields.get("READY") == "1"])
    assert [d for d in notify.after(sent) if d.fields.get("RELOADING") == "1"]
    assert "reload failed" not in notify.statuses()[-1]

    process.send_signal(signal.SIGTERM)
    wait_for(lambda: process.poll() is not None, timeout=15)
    assert notify.with_field("STOPPING", "1")
    assert receiver.messages == []  # nothing fired: the shipped rules hold with 500 USD
