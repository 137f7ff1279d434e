"""The pure core: data model, rule kinds and evaluation, alert lifecycle, the decide step,
messages, forecasts, mutes, silence matching, durations, the top-up policy and the secret
registry.

It imports nothing of watcher outside `watcher.core`, no I/O library (httpx, apprise, sqlite3,
psycopg, structlog) and reads no clock: time is a parameter.
"""
