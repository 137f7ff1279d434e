"""A simulated Telnyx account API on loopback, for the demo and integration tests.

`SimServer` serves the account-monitoring subset of the Telnyx API v2 (shapes from
`tests/data/telnyx-account.openapi.yaml`) from a `SimAccount`, on `127.0.0.1` in a
background thread. Tests script the account (balances, audit events, webhook
deliveries, a fake clock), inject faults (status codes, delays, malformed bodies,
dropped connections) and read back every request the server received.

Request handling, in order: record the request, apply a pending fault for its path,
check the bearer key, route. Standard library only (and the core's `Balance`).

Layout: the HTTP plumbing, the fault table and the request log are `simkit`'s (shared
with the Vonage simulator); this module is `SimServer` and the simulator's public face;
the account model and its scripting are in `sim_account.py`, the endpoints and error
bodies in `sim_routes.py`, the wire records and Telnyx's fault defaults in
`sim_records.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

from watcher.providers.simkit import (
    HOST,
    Clock,
    FaultKind,
    RecordedRequest,
    SimServerBase,
    free_port,
    iso,
)
from watcher.providers.telnyx.sim_account import BalanceScript, SimAccount
from watcher.providers.telnyx.sim_records import JSON, Fault, error_body
from watcher.providers.telnyx.sim_routes import TelnyxRoutes

__all__ = [
    "API_PREFIX",
    "HOST",
    "JSON",
    "BalanceScript",
    "Clock",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "SimAccount",
    "SimServer",
    "error_body",
    "free_port",
    "iso",
]

API_PREFIX = "/v2"


class SimServer(SimServerBase):
    """Serves a `SimAccount` on http://127.0.0.1:PORT/v2 from a background thread.

    Use as a context manager, or call `start()` / `stop()`. `port=0` picks a free port.
    A request's recorded `path` is relative to `/v2` (`/v2/v2/x` is recorded as `/v2/x`);
    a path outside `/v2` is recorded unchanged and answered 404.

    `accounts`: more accounts served at the same URL, each answering (and recording) the
    requests that carry its API key (distinct keys); a request with another key is
    `account`'s. `latency`: seconds each request waits before it is answered, give or
    take a uniform `jitter`.
    `traffic` counts the connections accepted and the most requests in flight at once.
    """

    account: SimAccount

    def __init__(
        self,
        account: SimAccount,
        *,
        port: int = 0,
        accounts: Sequence[SimAccount] = (),
        latency: float = 0.0,
        jitter: float = 0.0,
    ) -> None:
        routes = TelnyxRoutes(account, accounts)
        super().__init__(
            account,
            routes,
            port=port,
            prefix=API_PREFIX,
            name="telnyx-sim",
            latency=latency,
            jitter=jitter,
            select=routes.account_for if accounts else None,
        )

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v2`. Raises RuntimeError when not running."""
        return self.url
