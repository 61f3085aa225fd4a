"""Client side of the multi-instance tests: fire chat requests concurrently and judge every answer.

Each answer must be a well-formed OpenAI completion (JSON, or an SSE stream of chunks ending in ``[DONE]``) with
exactly the text the simulator was scripted to say, or a well-formed OpenAI error object. Anything else — a
connection error, a malformed body, a stream cut short, an error after the stream started — is a ``problem``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from simulator.text import plain_answer


@dataclass
class Result:
    index: int
    instance: int
    stream: bool
    status: int = 0
    code: str | None = None  # error code when the answer is an error
    message: str = ""
    problem: str | None = None  # anything that is not a clean answer or a clean error

    @property
    def answered(self) -> bool:
        return self.status == 200 and self.problem is None


def _error_problem(status: int, headers: httpx.Headers, raw: bytes) -> tuple[str | None, str, str | None]:
    """(code, message, problem) of a non-200 answer, which must be an OpenAI error object."""
    if "application/json" not in headers.get("content-type", ""):
        return None, "", f"{status} with content-type {headers.get('content-type')!r}: {raw[:200]!r}"
    try:
        error = json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        return None, "", f"{status} without an OpenAI error object: {raw[:200]!r}"
    if not (isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]
            and isinstance(error.get("type"), str) and "code" in error and "param" in error):
        return None, "", f"{status} with a malformed error object: {error!r}"
    return error.get("code"), error["message"], None


def check_completion(body: Any, prompt: str, model: str) -> str | None:
    try:
        choice = body["choices"][0]
        ok = (body["object"] == "chat.completion" and body["model"] == model
              and choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop")
    except (KeyError, IndexError, TypeError):
        return f"malformed completion: {body!r:.300}"
    if not ok:
        return f"unexpected completion: {body!r:.300}"
    if choice["message"]["content"] != plain_answer(prompt):
        return f"wrong answer text: {choice['message']['content']!r}"
    return None


def check_stream(lines: list[str], prompt: str, model: str) -> str | None:
    events = [line[6:] for line in lines if line.startswith("data: ")]
    if not events or events[-1] != "[DONE]":
        return f"stream did not end with [DONE]: {events[-3:]!r}"
    text, finished = [], False
    for raw in events[:-1]:
        try:
            chunk = json.loads(raw)
        except ValueError:
            return f"malformed SSE data: {raw[:200]!r}"
        if "error" in chunk:
            return f"error after the stream started: {chunk['error']!r}"
        if chunk.get("object") != "chat.completion.chunk" or chunk.get("model") != model:
            return f"malformed chunk: {raw[:200]!r}"
        for choice in chunk["choices"]:
            text.append(choice["delta"].get("content") or "")
            finished |= choice["finish_reason"] == "stop"
    if not finished:
        return "stream without finish_reason=stop"
    if "".join(text) != plain_answer(prompt):
        return f"wrong streamed text: {''.join(text)!r}"
    return None


async def one_request(
    client: httpx.AsyncClient, url: str, api_key: str, result: Result, prompt: str, model: str
) -> Result:
    body = {"model": model, "stream": result.stream, "messages": [{"role": "user", "content": prompt}]}
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as response:
            result.status = response.status_code
            if response.status_code != 200:
                raw = await response.aread()
                result.code, result.message, result.problem = _error_problem(
                    response.status_code, response.headers, raw)
            elif result.stream:
                lines = [line async for line in response.aiter_lines()]
                result.problem = check_stream(lines, prompt, model)
            else:
                raw = await response.aread()
                try:
                    result.problem = check_completion(json.loads(raw), prompt, model)
                except ValueError:
                    result.problem = f"200 with a body that is not JSON: {raw[:200]!r}"
    except httpx.HTTPError as exc:
        result.problem = f"{type(exc).__name__}: {exc}"
    return result


async def fire(
    urls: list[str], api_key: str, count: int, *, concurrency: int, model: str = "grok-4.5-fast",
    prompt: str = "request {index} from the crowd", timeout: float = 60,
) -> list[Result]:
    """``count`` requests, round-robin over ``urls``, every other one streamed, ``concurrency`` at a time."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    results: list[Result] = []
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)

    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                instance = index % len(urls)
                result = Result(index, instance, stream=index % 2 == 1)
                results.append(await one_request(
                    client, urls[instance], api_key, result, prompt.format(index=index), model))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(results, key=lambda r: r.index)


def tally(results: list[Result]) -> Counter[str]:
    return Counter("answer" if r.answered else f"{r.status} {r.code}" for r in results)
