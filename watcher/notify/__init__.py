"""Notifications: apprise delivery, the persistent outbox and its flushing.

It may import `watcher.core`, `watcher.config` and `watcher.state`.
"""
