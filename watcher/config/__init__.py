"""Configuration: settings, secret references, YAML with line marks, rule loading, `check` and the
JSON Schema.

It may import `watcher.core` only.
"""
