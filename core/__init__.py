"""Grok2API engine: upstream client, protocol translation, token pool, stores. No web framework in here."""
