"""Grok2API benchmark: ``python -m bench`` (see bench/README.md)."""
