"""Test helpers that run real servers: redis-server, the embedded store, an Upstash-REST-compatible front."""
