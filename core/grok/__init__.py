"""Grok Web upstream: transports, parsing and the typed events both chat transports produce."""
