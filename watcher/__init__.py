"""account-watcher: keeps a Telnyx account healthy."""

__version__ = "0.1.0"
