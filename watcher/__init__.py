"""account-watcher: keeps a Telnyx account healthy."""

import sys

__version__ = "0.1.0"

# httpx imports its own command line client (`httpx._main`) when it can, which loads
# click and pygments: ~2 MiB resident and 10-20 ms of every start-up, never used here.
# A None entry makes that import fail at once, and httpx falls back as documented.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
