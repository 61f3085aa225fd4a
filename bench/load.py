"""Closed-loop load: ``c`` workers, each on its own keep-alive connection, send requests back to back until
``n`` have been sent. Latency percentiles, throughput and the CPU every watched process spent per request."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.http import CLIENTS, FirstMark, Result, Target
from bench.procs import machine_busy_seconds

Check = Callable[[Result], bool]


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); ``nan`` for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "mean": sum(ms) / len(ms) if ms else math.nan,
        "max": max(ms) if ms else math.nan,
    }


@dataclass
class BlockResult:
    label: str
    concurrency: int
    requests: int
    ok: int
    errors: int
    wall_s: float
    total_ms: dict[str, float]
    first_ms: dict[str, float] | None
    cpu_ms_per_request: dict[str, float]
    client: str
    first_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    samples: tuple[list[float], list[float]] = field(default=([], []), repr=False)  # raw totals, firsts (s)

    @property
    def rps(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "concurrency": self.concurrency, "requests": self.requests, "ok": self.ok,
            "errors": self.errors, "wall_s": self.wall_s, "rps": self.rps, "total_ms": self.total_ms,
            "first_ms": self.first_ms, "cpu_ms_per_request": self.cpu_ms_per_request, "client": self.client,
            "first_error": self.first_error, **self.extra,
        }


def open_clients(targets: Callable[[int], Target], concurrency: int, client: str = "raw") -> list[Any]:
    """One client (one keep-alive connection, opened on first use) per worker."""
    factory = CLIENTS[client]
    return [factory(targets(i)) for i in range(concurrency)]


async def close_clients(clients: list[Any]) -> None:
    await asyncio.gather(*(w.close() for w in clients), return_exceptions=True)


def merge(parts: list[BlockResult]) -> BlockResult:
    """One result from several rounds of the same block: samples pooled, time and CPU added up."""
    first = parts[0]
    if len(parts) == 1:
        return first
    totals = [v for p in parts for v in p.samples[0]]
    firsts = [v for p in parts for v in p.samples[1]]
    ok = sum(p.ok for p in parts)
    wall = sum(p.wall_s for p in parts)
    names = {n for p in parts for n in p.cpu_ms_per_request}
    cpu = {n: sum(p.cpu_ms_per_request.get(n, 0.0) * max(p.ok, 1) for p in parts) / max(ok, 1) for n in names}
    extra: dict[str, Any] = {"rounds": len(parts)}
    loads = [(p.extra.get("background_cores"), p.wall_s) for p in parts]
    if all(isinstance(b, float) for b, _ in loads) and wall > 0:
        extra["background_cores"] = sum(b * w for b, w in loads) / wall
    if all("store_commands" in p.extra for p in parts):
        commands = sum(p.extra["store_commands"] for p in parts)
        sent = sum(p.ok + p.errors for p in parts)
        extra["store_commands"] = commands
        extra["store_commands_per_request"] = commands / max(sent, 1)
    return BlockResult(
        label=first.label, concurrency=first.concurrency, requests=sum(p.requests for p in parts), ok=ok,
        errors=sum(p.errors for p in parts), wall_s=wall, total_ms=summary(totals),
        first_ms=summary(firsts) if first.first_ms is not None else None, cpu_ms_per_request=cpu,
        client=first.client, first_error=next((p.first_error for p in parts if p.first_error), ""), extra=extra,
        samples=(totals, firsts),
    )


async def run_block(
    label: str,
    targets: Callable[[int], Target],
    *,
    concurrency: int,
    requests: int,
    warmup: int = 0,
    mark: FirstMark | None = None,
    check: Check | None = None,
    watch: Mapping[str, Callable[[], float]] | None = None,
    client: str = "raw",
    connections: list[Any] | None = None,
) -> BlockResult:
    """``targets(i)`` → what worker ``i`` sends. ``watch`` maps a process name to a CPU-seconds reader.

    ``connections`` (from ``open_clients``) are reused and left open, so several rounds of a block share one
    keep-alive pool; otherwise the block opens its own and closes them at the end.
    """
    clients = connections if connections is not None else open_clients(targets, concurrency, client)
    totals: list[float] = []
    firsts: list[float] = []
    errors = 0
    first_error = ""

    async def warm(worker: Any, count: int) -> None:
        for _ in range(count):
            await worker.send(mark)

    try:
        if warmup:
            per_worker = max(1, math.ceil(warmup / concurrency))
            await asyncio.gather(*(warm(w, per_worker) for w in clients))
        remaining = requests
        watchers = dict(watch or {})
        cpu_before = {name: read() for name, read in watchers.items()}
        cpu_before["load generator"] = time.process_time()
        busy_before = machine_busy_seconds()

        async def worker(w: Any) -> None:
            nonlocal remaining, errors, first_error
            while remaining > 0:
                remaining -= 1
                result, error = await _sample(w, mark, check)
                if result is None:
                    errors += 1
                    first_error = first_error or error
                    continue
                totals.append(result.total)
                if result.first is not None:
                    firsts.append(result.first)

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in clients))
        wall = time.perf_counter() - started
        cpu_after = {name: read() for name, read in watchers.items()}
        cpu_after["load generator"] = time.process_time()
        busy_after = machine_busy_seconds()
    finally:
        if connections is None:
            await close_clients(clients)
    ok = len(totals)
    per_request = {
        name: (cpu_after[name] - cpu_before[name]) * 1000 / max(ok, 1) for name in cpu_before
    }
    return BlockResult(
        label=label, concurrency=concurrency, requests=requests, ok=ok, errors=errors, wall_s=wall,
        total_ms=summary(totals), first_ms=summary(firsts) if mark is not None else None,
        cpu_ms_per_request=per_request, client=clients[0].name if clients else client, first_error=first_error,
        extra={"background_cores": background_cores(busy_before, busy_after, cpu_before, cpu_after, wall)},
        samples=(totals, firsts),
    )


def background_cores(
    busy_before: float, busy_after: float, cpu_before: dict[str, float], cpu_after: dict[str, float], wall: float
) -> float:
    """Cores kept busy, on average, by processes *outside* the benchmark during a block (other users of the
    machine; kernel work no watched process is charged for). Only meaningful when every benchmark process is
    watched."""
    ours = sum(d for n in cpu_before if not math.isnan(d := cpu_after[n] - cpu_before[n]))
    return max(0.0, (busy_after - busy_before - ours) / wall) if wall > 0 else math.nan


async def run_paced(
    label: str,
    targets: Callable[[int], Target],
    *,
    concurrency: int,
    rate: float,
    requests: int,
    mark: FirstMark | None = None,
    check: Check | None = None,
    watch: Mapping[str, Callable[[], float]] | None = None,
    client: str = "raw",
) -> BlockResult:
    """Open loop: request ``i`` is due at ``start + i / rate`` and goes out on the next free connection.

    Latency counts from the due time when the request had to wait for a connection (falling behind shows, no
    coordinated omission); when a worker was idle and slept until the due time, it counts from the actual send,
    so the event loop's millisecond timer granularity does not add to either path.
    """
    factory = CLIENTS[client]
    clients = [factory(targets(i)) for i in range(concurrency)]
    latencies: list[float] = []
    errors = 0
    first_error = ""
    next_index = 0
    watchers = dict(watch or {})
    cpu_before = {name: read() for name, read in watchers.items()}
    cpu_before["load generator"] = time.process_time()
    busy_before = machine_busy_seconds()
    start = time.perf_counter() + 0.01

    async def worker(w: Any) -> None:
        nonlocal next_index, errors, first_error
        while next_index < requests:
            due = start + next_index / rate
            next_index += 1
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
                due = time.perf_counter()
            result, error = await _sample(w, mark, check)
            if result is None:
                errors += 1
                first_error = first_error or error
                continue
            latencies.append(time.perf_counter() - due)

    try:
        await asyncio.gather(*(worker(w) for w in clients))
        wall = time.perf_counter() - start
    finally:
        await asyncio.gather(*(w.close() for w in clients), return_exceptions=True)
    cpu_after = {name: read() for name, read in watchers.items()}
    cpu_after["load generator"] = time.process_time()
    busy_after = machine_busy_seconds()
    ok = len(latencies)
    return BlockResult(
        label=label, concurrency=concurrency, requests=requests, ok=ok, errors=errors, wall_s=wall,
        total_ms=summary(latencies), first_ms=None,
        cpu_ms_per_request={n: (cpu_after[n] - cpu_before[n]) * 1000 / max(ok, 1) for n in cpu_before},
        client=clients[0].name if clients else client, first_error=first_error,
        extra={"rate": rate,
               "background_cores": background_cores(busy_before, busy_after, cpu_before, cpu_after, wall)},
    )


async def _sample(w: Any, mark: Any, check: Any) -> tuple[Any, str]:
    """One request: ``(result, "")`` when it succeeded, ``(None, why)`` otherwise. A broken connection is an
    error sample, not a crash (the connection is closed and reopened by the next send)."""
    try:
        result = await w.send(mark)
    except Exception as exc:
        await w.close()
        return None, f"{type(exc).__name__}: {exc}"
    if result.status != 200 or (check is not None and not check(result)):
        return None, f"HTTP {result.status}: {result.body[:300]!r}"
    return result, ""
