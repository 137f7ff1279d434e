"""Telnyx: the API client, its wire models and error classifier, the sources and the simulator.

It may import `watcher.core`, `watcher.config` and `watcher.providers` helpers.
"""
