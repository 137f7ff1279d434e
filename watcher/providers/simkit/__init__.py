"""Provider-independent parts of the loopback API simulators.

A simulator is an account (a `SimAccountBase` subclass holding the scripted state, the
fault table, the request log and a clock) plus a `Routes` object that turns a recorded
request into a `Response` in the provider's shapes. `SimServerBase` serves them on
`127.0.0.1` from a background thread. Each request is handled in this order: record
it, apply a pending fault for its path (only inside the server's prefix), hand it to
the routes. Standard library only.
"""

from watcher.providers.simkit.parts import (
    HOST,
    JSON_TYPE,
    ApiError,
    Clock,
    Fault,
    FaultKind,
    FaultTable,
    Headers,
    RateLimit,
    RecordedRequest,
    ResetForm,
    Response,
    Routes,
    SimAccountBase,
    as_utc,
    free_port,
    iso,
    json_bytes,
    json_response,
    utc_now,
)
from watcher.providers.simkit.server import SimHandler, SimHTTPServer, SimServerBase

__all__ = [
    "HOST",
    "JSON_TYPE",
    "ApiError",
    "Clock",
    "Fault",
    "FaultKind",
    "FaultTable",
    "Headers",
    "RateLimit",
    "RecordedRequest",
    "ResetForm",
    "Response",
    "Routes",
    "SimAccountBase",
    "SimHTTPServer",
    "SimHandler",
    "SimServerBase",
    "as_utc",
    "free_port",
    "iso",
    "json_bytes",
    "json_response",
    "utc_now",
]
