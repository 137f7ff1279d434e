"""The daemon: the poll cycle, the fixed-rate loop and its supervisor, the top-up executor,
metrics, sd_notify and logging.

It may import every layer below it (notify, state, providers, config, core), never
`watcher.cli`.
"""
