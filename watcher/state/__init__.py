"""State: the store (SQLite), migrations, the top-up ledger and its journal, silences and the state
lock.

It may import `watcher.core` and `watcher.config` only.
"""
