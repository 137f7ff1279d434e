"""A simulated Vonage account API on loopback, for integration tests and the demo.

`VonageSimServer` serves one `VonageSimAccount` (`sim_account`) on `127.0.0.1`, answering
both hosts' paths on one port: the rest.nexmo.com ones (`/account/get-balance`,
`/account/top-up`, `/account/settings`) and the api.nexmo.com ones
(`/accounts/{api_key}/secrets`, `/accounts/{api_key}/subaccounts`, `/beta/audit/events`),
so a client's `rest_url` and `api_url` can both be `server.url`. Shapes follow the
vendored specs (`tests/data/vonage-*.openapi.yaml`); routes and error shapes live in
`sim_routes`. Tests script the account, inject faults (`simkit.Fault`) and read back
every request.
"""

from __future__ import annotations

from watcher.providers.simkit import SimServerBase
from watcher.providers.vonage.sim_account import (
    MAX_SECRETS,
    SIM_KEY,
    SIM_SECRET,
    AuditEvent,
    Secret,
    SettingsChange,
    Subaccount,
    TopUpAttempt,
    VonageSimAccount,
)
from watcher.providers.vonage.sim_routes import VonageRoutes

__all__ = [
    "MAX_SECRETS",
    "SIM_KEY",
    "SIM_SECRET",
    "AuditEvent",
    "Secret",
    "SettingsChange",
    "Subaccount",
    "TopUpAttempt",
    "VonageSimAccount",
    "VonageSimServer",
]


class VonageSimServer(SimServerBase):
    """Serves a `VonageSimAccount` on `http://127.0.0.1:PORT` (both hosts' paths).

    Use as a context manager, or `start()` / `stop()`; `.url` is the base URL for both
    `rest_url` and `api_url`. `port=0` picks a free port.
    """

    def __init__(self, account: VonageSimAccount, *, port: int = 0) -> None:
        super().__init__(account, VonageRoutes(account), port=port, name="vonage-sim")
        self.account: VonageSimAccount = account
