"""Providers: each turns its API into the core's snapshot and offers pay(); `base.py` holds the
protocol the service layer holds them by.

A provider package may import `watcher.core`, `watcher.config` and the shared helpers of this
package, never another provider, the state, notify, service or cli.
"""
