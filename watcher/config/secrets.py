"""Secret references: `env:NAME`, `file:PATH`, `credential:NAME`.

The config holds references, never secrets. A reference is resolved at start-up into a
`pydantic.SecretStr`; error messages name the reference, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

RefKind = Literal["env", "file", "credential"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_.@:+-]+")
_KINDS: tuple[RefKind, ...] = ("env", "file", "credential")
_SYSTEMD_HINT = "credential: references work under systemd LoadCredential="


class SecretError(Exception):
    """One or more secret references cannot be resolved.

    `.errors` holds one sentence per reference; `str()` joins them with newlines. No
    message ever contains a secret's value.
    """

    def __init__(self, errors: str | Sequence[str]) -> None:
        self.errors: list[str] = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A reference to a secret; `str()` gives the reference text (which is not secret)."""

    kind: RefKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


def parse_ref(text: str) -> SecretRef | None:
    """Parse a secret reference.

    In: text such as `env:TELNYX_API_KEY`, `file:/run/keys/telnyx`, `file:keys/telnyx`
    (relative to the config file's directory), `credential:telnyx_api_key`.
    Out: a `SecretRef`, or None when the text does not start with `env:`, `file:` or
    `credential:` (e.g. a literal notification URL).
    Raises: `ValueError` when it starts like a reference but the name is not valid; the
    message does not repeat the text.
    """
    kind, sep, name = text.partition(":")
    if not sep or kind not in _KINDS:
        return None
    ref_kind: RefKind = "env" if kind == "env" else "file" if kind == "file" else "credential"
    _check_name(ref_kind, name)
    return SecretRef(ref_kind, name)


def _check_name(kind: RefKind, name: str) -> None:
    if kind == "env" and not _ENV_NAME.fullmatch(name):
        raise ValueError("an env: reference needs a variable name like env:TELNYX_API_KEY")
    if kind == "file" and (not name.strip() or "\0" in name):
        raise ValueError("a file: reference needs a path like file:/etc/account-watcher/key")
    if kind == "credential" and (not _CREDENTIAL_NAME.fullmatch(name) or name in {".", ".."}):
        raise ValueError(
            "a credential: reference needs a systemd credential name like credential:telnyx_api_key"
        )


def resolve(ref: SecretRef, *, environ: Mapping[str, str], base_dir: Path) -> SecretStr:
    """Read the secret a reference points to.

    In: the reference; the environment to read (`env:` and `$CREDENTIALS_DIRECTORY`);
    the directory relative `file:` paths start from (the config file's directory).
    Out: the value as `SecretStr`; one trailing newline of a file is removed.
    Raises: `SecretError` with one sentence naming the reference and the reason, e.g.
    `secret env:TELNYX_API_KEY: environment variable TELNYX_API_KEY is not set`.
    """
    if ref.kind == "env":
        return _from_env(ref, environ)
    if ref.kind == "file":
        path = Path(ref.name).expanduser()
        return _from_file(ref, path if path.is_absolute() else base_dir / path)
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise SecretError(f"secret {ref}: $CREDENTIALS_DIRECTORY is not set ({_SYSTEMD_HINT})")
    return _from_file(ref, Path(directory) / ref.name)


def _from_env(ref: SecretRef, environ: Mapping[str, str]) -> SecretStr:
    value = environ.get(ref.name)
    if value is None:
        raise SecretError(f"secret {ref}: environment variable {ref.name} is not set")
    if not value.strip():
        raise SecretError(f"secret {ref}: environment variable {ref.name} is empty")
    return _checked(ref, value, f"environment variable {ref.name}")


def _from_file(ref: SecretRef, path: Path) -> SecretStr:
    try:
        value = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"secret {ref}: {path} is not UTF-8 text") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SecretError(f"secret {ref}: cannot read {path}: {reason}") from None
    value = value.removesuffix("\n").removesuffix("\r")
    if not value.strip():
        raise SecretError(f"secret {ref}: {path} is empty")
    return _checked(ref, value, str(path))


def _checked(ref: SecretRef, value: str, where: str) -> SecretStr:
    """`value`, unless no key, token or URL can be it: a line break or another control
    character inside, or a space at either end (a second newline at the end of a file,
    say). Such a value would be refused by HTTP when sent, and the library refusing it
    may quote it; the error here names where it came from, never the value."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise SecretError(
            f"secret {ref}: {where} holds a line break or another control character "
            "(a file may end with one newline, no more)"
        )
    if value != value.strip():
        raise SecretError(f"secret {ref}: {where} begins or ends with a space")
    return SecretStr(value)
