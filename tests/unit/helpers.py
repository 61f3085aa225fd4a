"""Shared test data access: the recorded upstream samples and the reconstructed transcripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.grok.events import Event
from core.grok.parse import JsonStreamDecoder, parse_mgw_event, parse_rest_object

DATA = Path(__file__).parent / "data"
# Recorded upstream captures, vendored (≈30 KB) so a bare clone runs every parser test: copied from the
# project's shared/upstream/samples; add new captures here together with their expectations in test_parse.py.
SAMPLES = DATA / "samples"


def sample_bytes(name: str) -> bytes:
    path = SAMPLES / name
    if not path.is_file():
        pytest.fail(f"upstream sample {path} is missing: vendor it under tests/unit/data/samples/")
    return path.read_bytes()


def data_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()


def decode(data: bytes, chunks: list[bytes] | None = None) -> list[dict]:
    decoder = JsonStreamDecoder()
    out: list[dict] = []
    for chunk in chunks if chunks is not None else [data]:
        out += decoder.feed(chunk)
    return out + decoder.close()


def rest_events(data: bytes) -> list[Event]:
    return [event for obj in decode(data) for event in parse_rest_object(obj)]


def mgw_events(data: bytes) -> list[Event]:
    return [event for obj in decode(data) for event in parse_mgw_event(obj)]
