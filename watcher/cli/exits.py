"""Exit codes (DESIGN §7) and the one-sentence `Exit`: a module of its own, so that
parsing the command line and reporting its end load no command's modules."""

from __future__ import annotations

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3


class Exit(Exception):
    """Ends the command with a code and an optional one-sentence message."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
