"""Telnyx: the API client, its wire models and error classifier, the sources, the provider
and the simulator.

It may import `watcher.core`, `watcher.config` and the shared `watcher.providers` helpers,
never another provider's folder.
"""
