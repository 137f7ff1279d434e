"""The pure core: data model, rule evaluation, alert lifecycle, messages, forecasts, mutes,
durations and the top-up policy.

It imports nothing of watcher outside `watcher.core`, no I/O library (httpx, apprise, sqlite3,
psycopg, structlog) and reads no clock: time is a parameter.
"""
