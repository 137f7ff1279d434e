"""A simulated Telnyx account API on loopback, for the demo and integration tests."""

from watcher.sim.server import (
    Fault,
    RecordedRequest,
    SimAccount,
    SimServer,
    error_body,
    free_port,
    iso,
)

__all__ = [
    "Fault",
    "RecordedRequest",
    "SimAccount",
    "SimServer",
    "error_body",
    "free_port",
    "iso",
]
