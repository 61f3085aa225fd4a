"""Scripted replies: tests play the model by queueing the texts of the next answers, per account or for any.

A queued reply replaces the answer text of the next admitted chat turn (after quota and concurrency checks, so
refused requests consume nothing), streamed like any answer; markers in the prompt still add faults.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ReplySpec = str | dict[str, Any]
ALL = "*"  # clear(): every queue (None is the global queue, a token that account's)


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    thinking: str | None = None  # streamed as reasoning before the answer

    @classmethod
    def parse(cls, spec: ReplySpec | Reply) -> Reply:
        if isinstance(spec, Reply):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if not isinstance(spec, dict):
            raise ValueError("a reply is a string or {\"text\": ..., \"thinking\": ...}")
        unknown = set(spec) - {"text", "thinking"}
        if unknown:
            raise ValueError(f"unknown reply keys {sorted(unknown)}")
        text, thinking = spec.get("text", ""), spec.get("thinking")
        if not isinstance(text, str) or not (thinking is None or isinstance(thinking, str)):
            raise ValueError("reply text and thinking must be strings")
        return cls(text, thinking or None)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "thinking": self.thinking}


class ReplyQueues:
    """FIFO queues keyed by account token; ``None`` is the global queue, used when the account's is empty."""

    def __init__(self) -> None:
        self._queues: dict[str | None, deque[Reply]] = {}
        self._lock = threading.Lock()

    def add(self, token: str | None, replies: Iterable[ReplySpec | Reply], *, replace: bool = False) -> int:
        parsed = [Reply.parse(r) for r in replies]  # validate everything before queueing anything
        with self._lock:
            queue = self._queues.setdefault(token, deque())
            if replace:
                queue.clear()
            queue.extend(parsed)
            return len(queue)

    def take(self, token: str) -> Reply | None:
        with self._lock:
            for key in (token, None):
                queue = self._queues.get(key)
                if queue:
                    return queue.popleft()
            return None

    def clear(self, token: str | None = ALL) -> None:
        """Clear every queue (``ALL``), the global one (``None``) or one account's."""
        with self._lock:
            if token == ALL:
                self._queues.clear()
            else:
                self._queues.pop(token, None)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "global": [r.to_dict() for r in self._queues.get(None, ())],
                "accounts": {k: [r.to_dict() for r in q] for k, q in self._queues.items() if k is not None and q},
            }
