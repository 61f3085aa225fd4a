"""Lenient parsing of Grok Web chat streams into typed events.

Two layers:

* ``JsonStreamDecoder`` turns raw response bytes into JSON objects. Upstream sends NDJSON (one object per
  ``\\n``-terminated line), but copies and older gateways also produce ``data:`` prefixes, ``[DONE]`` sentinels,
  ``}{``-joined or pretty-printed objects and stray text; all of that is accepted, nothing is fatal.
* ``parse_rest_object`` / ``parse_mgw_event`` map one decoded object (a REST NDJSON line or an mgw WebSocket frame)
  to events from :mod:`core.grok.events`. Unknown keys and line types are ignored so that new upstream fields never
  break a stream.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from core.grok.events import (
    AnswerText,
    Card,
    ConversationStarted,
    Event,
    FinalMessage,
    ImageProgress,
    ModelInfo,
    SearchResults,
    SoftStop,
    Source,
    StreamError,
    ThinkingText,
    Title,
    ToolUse,
    UserTurn,
    VideoProgress,
)

__all__ = [
    "JsonStreamDecoder",
    "is_terminal_mgw",
    "parse_mgw_event",
    "parse_rest_object",
    "parse_rest_stream",
]

# --------------------------------------------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------------------------------------------

_STRUCTURAL = re.compile(r'[{}"]')  # outside a JSON string only these change the nesting state
_STRING_SPECIAL = re.compile(r'["\\]')  # inside a string only these matter
_IGNORED_PREFIXES = ("event:", "id:", "retry:", ":")
_MAX_JUNK_CHARS = 64 * 1024  # an unterminated line without any "{" is dropped beyond this


class JsonStreamDecoder:
    """Incremental decoder from response bytes to JSON objects (dicts).

    The common case -- one object per ``\\n``-terminated line -- costs one ``json.loads`` per line. Anything else
    (``}{``-joined objects, pretty-printed objects spanning lines, junk between objects) falls back to an
    incremental brace scanner that keeps its state between ``feed`` calls, so no byte is scanned twice.
    Bytes are decoded with an incremental UTF-8 decoder, so chunks may split multi-byte characters.
    """

    def __init__(self, max_object_chars: int = 16 * 1024 * 1024) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""
        self._pos = 0  # next unexamined index in _buf
        self._start = -1  # index of the "{" of the object being scanned, or -1 at top level
        self._depth = 0
        self._in_string = False
        self._max_object_chars = max_object_chars

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        text = self._utf8.decode(chunk)
        if not text:
            return []
        self._buf += text
        # Wait for the end of a partial line unless this chunk had no newline at all: then the stream is not
        # line-framed (``}{``-joined) or the line is huge, and objects must still come out as soon as they close.
        out = self._drain(eager="\n" not in text)
        self._compact()
        return out

    def close(self) -> list[dict[str, Any]]:
        """Flush: decode what is left, including a last line without ``\\n``."""
        self._buf += self._utf8.decode(b"", final=True)
        out = self._drain(eager=True)
        while self._start >= 0:  # an object never closed: a stray "{" in junk may hide real objects after it
            self._pos, self._start = self._start + 1, -1
            out += self._drain(eager=True)
        self._buf, self._pos = "", 0
        return out

    def _drain(self, eager: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        buf = self._buf
        while True:
            if self._start >= 0:
                end = self._scan()
                if end is None:
                    if len(buf) - self._start > self._max_object_chars:
                        self._pos, self._start = self._start + 1, -1  # give up on it, resync after its "{"
                        continue
                    return out
                obj = _loads_object(buf[self._start : end])
                if obj is None:
                    self._pos = self._start + 1  # balanced but not JSON: look for objects inside it
                else:
                    out.append(obj)
                self._start = -1
                continue
            newline = buf.find("\n", self._pos)
            if newline >= 0:
                line = _strip_line(buf[self._pos : newline])
                if not line or line == "[DONE]" or line.startswith(_IGNORED_PREFIXES):
                    self._pos = newline + 1
                    continue
                obj = _loads_object(line) if line[0] == "{" else None
                if obj is not None:  # fast path
                    out.append(obj)
                    self._pos = newline + 1
                    continue
                if "{" not in line:
                    self._pos = newline + 1
                    continue
            elif not eager:
                return out
            brace = buf.find("{", self._pos)
            if brace < 0:
                if len(buf) - self._pos > _MAX_JUNK_CHARS:
                    self._pos = len(buf)
                # else keep the partial line: it may be the start of "data: {...}" or "[DONE]"
                return out
            self._start, self._pos, self._depth, self._in_string = brace, brace, 0, False

    def _scan(self) -> int | None:
        """Advance the brace scan; return the index just past the closing "}" or None if more data is needed."""
        buf, pos = self._buf, self._pos
        while True:
            if self._in_string:
                match = _STRING_SPECIAL.search(buf, pos)
                if match is None:
                    pos = len(buf)
                    break
                if match.group() == '"':
                    self._in_string = False
                    pos = match.end()
                elif match.end() < len(buf):
                    pos = match.end() + 1  # skip the escaped character
                else:
                    pos = match.start()  # a lone trailing backslash: re-read it with the next chunk
                    break
            else:
                match = _STRUCTURAL.search(buf, pos)
                if match is None:
                    pos = len(buf)
                    break
                pos = match.end()
                char = match.group()
                if char == '"':
                    self._in_string = True
                elif char == "{":
                    self._depth += 1
                else:
                    self._depth -= 1
                    if self._depth == 0:
                        self._pos = pos
                        return pos
        self._pos = pos
        return None

    def _compact(self) -> None:
        cut = self._start if self._start >= 0 else self._pos
        if cut:
            self._buf = self._buf[cut:]
            self._pos -= cut
            if self._start >= 0:
                self._start = 0


def _strip_line(line: str) -> str:
    line = line.strip()
    if line.startswith("data:"):
        line = line[5:].lstrip()
    return line


def _loads_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def iter_objects(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    decoder = JsonStreamDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.close()


def parse_rest_stream(data: bytes | Iterable[bytes]) -> list[Event]:
    """Decode and parse a whole REST body (tests, non-streamed error bodies)."""
    chunks = [data] if isinstance(data, bytes | bytearray) else data
    return [event for obj in iter_objects(chunks) for event in parse_rest_object(obj)]


# --------------------------------------------------------------------------------------------------------------
# Small coercion helpers: upstream types drift, so every field is read defensively
# --------------------------------------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return default
    return default


def _opt_int(value: Any) -> int | None:
    return _int(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None


def _json_dict(value: Any) -> dict[str, Any]:
    """A card's ``jsonData``: a JSON string (REST) or already an object."""
    if isinstance(value, str):
        return _loads_object(value) or {}
    return _dict(value)


def _first_str(mapping: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _snake(name: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", name).lower()


# --------------------------------------------------------------------------------------------------------------
# Shared pieces: errors, sources, cards, images
# --------------------------------------------------------------------------------------------------------------

_BLOCKED_MARKERS = ("blocked-user", "user is blocked")
_RATE_LIMIT_IMAGE_CODES = ("rate_limit", "1006", "err_rate_limited")


def _stream_error(error: Any, code: Any = None) -> StreamError:
    """Normalise every error shape (object, string, bare body) to a ``StreamError``."""
    if isinstance(error, dict):
        message = _first_str(error, "message", "error", "err_msg", "detail") or json.dumps(error)[:500]
        code = error.get("code", error.get("err_code", code))
        severity = _str(error.get("severity")).upper()
    else:
        message, severity = str(error), ""
    if isinstance(code, str) and code.isdecimal():
        code = int(code)
    if any(marker in message.lower() for marker in _BLOCKED_MARKERS):
        # Blocked accounts share code 7 with anti-bot rejections; keep them apart (retrying cannot help).
        code = "unauthorized:blocked-user"
    fatal = not severity or "FATAL" in severity
    return StreamError(message=message, code=code if isinstance(code, str | int) else None, fatal=fatal)


def _web_source(item: Any) -> Source | None:
    item = _dict(item)
    url = _first_str(item, "url", "link")
    if not url:
        return None
    title = _first_str(item, "title", "name")
    return Source(url=url, title=title, snippet=_first_str(item, "preview", "snippet", "description", "text"))


def _x_source(item: Any) -> Source | None:
    item = _dict(item)
    username = _first_str(item, "username", "userhandle", "userHandle", "screenName")
    post_id = item.get("postId", item.get("post_id", item.get("id")))
    url = _first_str(item, "url")
    if not url and username and isinstance(post_id, str | int) and str(post_id):
        url = f"https://x.com/{username}/status/{post_id}"
    if not url:
        return None
    text = _first_str(item, "text")
    name = _first_str(item, "name", "displayName")
    title = f"{name} (@{username})" if name and username else (f"@{username}" if username else "")
    return Source(url=url, title=title, snippet=text)


def _results(value: Any) -> list[Any]:
    """Search results come as ``{"results":[...]}`` or as a bare array."""
    if isinstance(value, dict):
        return _list(value.get("results"))
    return _list(value)


_WEB_RESULT_KEYS = ("webSearchResults", "citedWebSearchResults")
_X_RESULT_KEYS = ("xSearchResults", "xposts", "citedXposts")


def _collect_sources(body: dict[str, Any]) -> list[Source]:
    found: list[Source | None] = []
    for key in _WEB_RESULT_KEYS:
        found += [_web_source(item) for item in _results(body.get(key))]
    for key in _X_RESULT_KEYS:
        found += [_x_source(item) for item in _results(body.get(key))]
    for response in _list(body.get("toolResponses")):
        if isinstance(response, dict):
            found += _collect_sources(response)
    return _unique_sources(found)


def _unique_sources(sources: Iterable[Source | None]) -> list[Source]:
    seen: set[str] = set()
    unique = []
    for source in sources:
        if source is not None and source.url not in seen:
            seen.add(source.url)
            unique.append(source)
    return unique


def _card_events(data: dict[str, Any]) -> list[Event]:
    """A decoded card: ``Card`` when it has an id, plus image progress / errors from its ``image_chunk``."""
    events: list[Event] = []
    card_id = _first_str(data, "id", "cardId")
    if card_id:
        card_type = _first_str(data, "type", "cardType")
        events.append(Card(card_id=card_id, type=card_type, data=data))
    chunk = data.get("image_chunk", data.get("imageChunk"))
    if isinstance(chunk, dict):
        url = _first_str(chunk, "imageUrl", "image_url", "url")
        if url:
            events.append(
                ImageProgress(
                    image_id=_first_str(chunk, "imageUuid", "imageId") or card_id or url,
                    url=url,
                    progress=_int(chunk.get("progress")),
                    index=_int(chunk.get("imageIndex")),
                    moderated=bool(chunk.get("moderated")),
                )
            )
        error_code = chunk.get("systemErrCode")
        if error_code not in (None, "", 0):
            events.append(_image_error(error_code))
    return events


def _image_error(code: Any) -> StreamError:
    if str(code).lower() in _RATE_LIMIT_IMAGE_CODES:
        return StreamError(message="image generation rate limited", code="rate_limit", fatal=True)
    return StreamError(
        message=f"image generation failed ({code})",
        code=code if isinstance(code, str | int) else None,
        fatal=False,
    )


def _cards_from_attachments(body: dict[str, Any]) -> list[Event]:
    attachments = [body.get("cardAttachment"), *_list(body.get("cardAttachments"))]
    events: list[Event] = []
    for attachment in attachments:
        if isinstance(attachment, dict):
            data = _json_dict(attachment.get("jsonData")) if "jsonData" in attachment else attachment
            events += _card_events(data)
    return events


def _image_progress(value: dict[str, Any]) -> ImageProgress | None:
    url = _first_str(value, "imageUrl", "image_url", "url")
    image_id = _first_str(value, "imageId", "imageUuid", "image_id") or url
    if not image_id:
        return None
    progress = _int(value.get("progress"))
    if value.get("isFinal") is True:
        progress = max(progress, 100)
    return ImageProgress(
        image_id=image_id,
        url=url,
        progress=progress,
        index=_int(value.get("imageIndex")),
        moderated=bool(value.get("moderated")),
    )


def _video_progress(value: dict[str, Any]) -> VideoProgress:
    return VideoProgress(
        video_id=_first_str(value, "videoId", "assetId", "videoPostId"),
        progress=_int(value.get("progress")),
        url=_first_str(value, "videoUrl", "contentUrl", "assetUrl") or None,
        thumbnail_url=_first_str(value, "thumbnailImageUrl") or None,
        moderated=bool(value.get("moderated")),
    )


# --------------------------------------------------------------------------------------------------------------
# REST NDJSON lines
# --------------------------------------------------------------------------------------------------------------

# Tags whose tokens are reasoning even when ``isThinking`` is missing or false.
_THINKING_TAGS = frozenset({"header", "summary", "analysis", "thinking", "reasoning"})
_TOOL_CARD_TAG = "tool_usage_card"
_TOOL_RESULT_TAG = "raw_function_result"
_TOOL_NAME = re.compile(r"<xai:tool_name>\s*(.*?)\s*</xai:tool_name>", re.S | re.I)
_TOOL_ID = re.compile(r"<xai:tool_usage_card_id>\s*(.*?)\s*</xai:tool_usage_card_id>", re.S | re.I)
_TOOL_ARGS = re.compile(r"<xai:tool_args>\s*(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?\s*</xai:tool_args>", re.S | re.I)


def parse_rest_object(obj: dict[str, Any]) -> list[Event]:
    """Map one decoded REST stream object to events (both ``result.response.X`` and flat ``result.X``)."""
    if not isinstance(obj, dict):
        return []
    result = obj.get("result")
    if not isinstance(result, dict):
        return _top_level_error(obj)
    events: list[Event] = []
    conversation = _dict(result.get("conversation"))
    if conversation_id := _first_str(conversation, "conversationId", "id"):
        events.append(ConversationStarted(conversation_id))
    response = result.get("response")
    events += _parse_response(response if isinstance(response, dict) else result)
    title = result.get("title")
    if isinstance(title, dict):
        title = _first_str(title, "newTitle", "title")
    if isinstance(title, str) and title:
        events.append(Title(title))
    if "error" in obj:  # a top-level error next to a result: never seen, but never ignore an error
        events += _top_level_error(obj)
    return events


def _top_level_error(obj: dict[str, Any]) -> list[Event]:
    error = obj.get("error")
    if isinstance(error, dict):
        return [_stream_error(error)]
    if isinstance(error, str) and error:  # {"code":"unauthorized:blocked-user","error":"User is blocked"}
        return [_stream_error(error, obj.get("code"))]
    if isinstance(obj.get("message"), str) and "code" in obj:  # bare {"code":7,"message":...,"details":[]}
        return [_stream_error(obj)]
    return []


def _parse_response(body: dict[str, Any]) -> list[Event]:
    events: list[Event] = []
    user = body.get("userResponse")
    if isinstance(user, dict) and (user_id := _first_str(user, "responseId")):
        events.append(UserTurn(user_id))
    if model_hash := _first_str(_dict(body.get("llmInfo")), "modelHash"):
        events.append(ModelInfo(model_hash))
    cards = _cards_from_attachments(body)
    if body.get("error"):  # the explicit error below says it better than an image chunk's error code
        cards = [event for event in cards if not isinstance(event, StreamError)]
    events += cards  # before the token: a citation card must be known when its tag is seen
    if sources := _collect_sources(body):
        events.append(SearchResults(tuple(sources)))
    events += _token_events(body)
    image = body.get("streamingImageGenerationResponse")
    if isinstance(image, dict) and (progress := _image_progress(image)):
        events.append(progress)
    video = body.get("streamingVideoGenerationResponse")
    if isinstance(video, dict):
        events.append(_video_progress(video))
    if body.get("isSoftStop") is True:
        events.append(SoftStop())
    model_response = body.get("modelResponse")
    if isinstance(model_response, dict):
        events += _final_message(model_response, fallback_id=_first_str(body, "responseId"))
    error = body.get("error")
    if error:
        events.append(_stream_error(error))
    return events


def _token_events(body: dict[str, Any]) -> list[Event]:
    tag = _str(body.get("messageTag"))
    token = body.get("token")
    rollout_id = _first_str(body, "rolloutId") or None
    if tag == _TOOL_CARD_TAG or isinstance(body.get("toolUsageCard"), dict):
        tool = _tool_use(body, _str(token), rollout_id)
        return [tool] if tool else []  # the card's XML token is never text
    if not isinstance(token, str) or not token or tag == _TOOL_RESULT_TAG:
        return []
    step_id = _opt_int(body.get("messageStepId"))
    if body.get("isThinking") is True or tag in _THINKING_TAGS or (not tag and step_id is not None):
        return [ThinkingText(token, step_id=step_id, header=tag == "header", rollout_id=rollout_id)]
    return [AnswerText(token)]


def _tool_use(body: dict[str, Any], token: str, rollout_id: str | None) -> ToolUse | None:
    card = _dict(body.get("toolUsageCard"))
    card_id = _first_str(card, "toolUsageCardId") or _first_str(body, "toolUsageCardId")
    for key, value in card.items():
        if key != "toolUsageCardId" and isinstance(value, dict):
            return ToolUse(
                card_id=card_id, name=_snake(key), args=_dict(value.get("args")), rollout_id=rollout_id
            )
    # No structured card: read the XML, but only once it is complete enough to name the tool.
    name = _TOOL_NAME.search(token)
    if name is None:
        return None
    args_match = _TOOL_ARGS.search(token)
    args = (_loads_object(args_match.group(1)) or {}) if args_match else {}
    xml_id = _TOOL_ID.search(token)
    card_id = card_id or (xml_id.group(1) if xml_id else "")
    return ToolUse(card_id=card_id, name=name.group(1), args=args, rollout_id=rollout_id)


def _final_message(message: dict[str, Any], fallback_id: str) -> list[Event]:
    cards: list[Card] = []
    for raw in _list(message.get("cardAttachmentsJson")):
        cards += [event for event in _card_events(_json_dict(raw)) if isinstance(event, Card)]
    errors = [_stream_error(item) for item in _list(message.get("streamErrors")) if item]
    final = FinalMessage(
        response_id=_first_str(message, "responseId") or fallback_id,
        message=_str(message.get("message")),
        generated_image_urls=tuple(
            url for url in _list(message.get("generatedImageUrls")) if isinstance(url, str) and url
        ),
        file_attachments=tuple(
            str(item) for item in _list(message.get("fileAttachments")) if isinstance(item, str | int)
        ),
        sources=tuple(_collect_sources(message)),
        cards=tuple(cards),
        stream_errors=tuple(error.message for error in errors),
    )
    # Non-empty streamErrors mean the turn failed; surface the first as an error event too, so consumers that
    # only watch for StreamError do not miss it.
    return [final, errors[0]] if errors else [final]


# --------------------------------------------------------------------------------------------------------------
# mgw WebSocket frames
# --------------------------------------------------------------------------------------------------------------

_ANSWER_CHANNELS = frozenset({"", "CHANNEL_ASSISTANT_RESPONSE", "CHANNEL_UNSPECIFIED"})
_REASONING_MARKERS = ("ANALYSIS", "REASONING", "THINKING", "NOTETAKER")
_CHANNEL_NUMBERS = {
    0: "CHANNEL_UNSPECIFIED",
    1: "CHANNEL_ASSISTANT_RESPONSE",
    2: "CHANNEL_ASSISTANT_THINKING",
    3: "CHANNEL_ASSISTANT_NOTETAKER_HEADER",
    4: "CHANNEL_ASSISTANT_NOTETAKER_SUMMARY",
}
_TERMINAL_MGW = frozenset({"response.done", "error", "session.ended"})


def _mgw_event(frame: dict[str, Any]) -> dict[str, Any]:
    event = frame.get("event")
    if isinstance(event, dict):
        return event
    if "type" in frame:  # tolerate a bare event without the envelope
        return frame
    if isinstance(frame.get("chunk"), dict):  # and a bare chunk payload, as abridged captures show them
        return {"type": "response.chunk", "chunk": frame["chunk"]}
    return {}


def is_terminal_mgw(frame: dict[str, Any]) -> bool:
    """True when the turn is over: ``response.done``, ``error`` or ``session.ended``."""
    return _str(_mgw_event(frame).get("type")) in _TERMINAL_MGW


def parse_mgw_event(frame: dict[str, Any]) -> list[Event]:
    """Map one mgw WebSocket frame (``{"session_id":..., "event":{"type":...}}``) to events."""
    if not isinstance(frame, dict):
        return []
    event = _mgw_event(frame)
    kind = _str(event.get("type"))
    if kind == "response.chunk":
        return _mgw_chunk(_dict(event.get("chunk")))
    if kind == "conversation.attached":
        conversation_id = _first_str(_dict(event.get("conversation")), "id") or _str(frame.get("session_id"))
        return [ConversationStarted(conversation_id)] if conversation_id else []
    if kind == "session.created":
        session_id = _str(frame.get("session_id")) or _first_str(_dict(event.get("session")), "id")
        return [ConversationStarted(session_id)] if session_id else []
    if kind == "response.output_text.delta":
        delta = _str(event.get("delta"))
        return [AnswerText(delta)] if delta else []
    if kind == "response.search.result":
        sources = _unique_sources([_web_source(event.get("result"))])
        return [SearchResults(tuple(sources))] if sources else []
    if kind == "response.grok.output":
        return _mgw_output(_dict(event.get("output")))
    if kind == "response.done":
        return _mgw_done(_dict(event.get("response")))
    if kind == "conversation.title.updated":
        title = _str(event.get("title"))
        return [Title(title)] if title else []
    if kind == "error":
        return [_stream_error(event.get("error") or event.get("message") or "upstream error")]
    if kind == "session.ended":
        return [StreamError(message="session ended", code="session_ended")]
    return []


def _mgw_chunk(chunk: dict[str, Any]) -> list[Event]:
    events: list[Event] = []
    step_id = _opt_int(_dict(chunk.get("metadata")).get("step_id"))
    text = chunk.get("text")
    if isinstance(text, dict):
        events += _mgw_text(text, step_id)
    tool_card = chunk.get("tool_usage_card")
    if isinstance(tool_card, dict):
        events += _mgw_tool_card(tool_card)
    tool_result = chunk.get("tool_result")
    if isinstance(tool_result, dict):
        events += _mgw_tool_result(tool_result)
    citation = chunk.get("render_citation")
    if isinstance(citation, dict) and (card_id := _first_str(citation, "id")):
        events.append(Card(card_id=card_id, type="render_inline_citation", data=dict(citation)))
    card = chunk.get("card_attachment")
    if isinstance(card, dict):
        events += _card_events(_json_dict(card.get("jsonData", card.get("json_data", card))))
    image = chunk.get("render_generated_image")
    if isinstance(image, dict):
        events += _mgw_generated_image(image)
    return events


def _mgw_text(text: dict[str, Any], step_id: int | None) -> list[Event]:
    value = _str(text.get("text"))
    if not value:
        return []
    channel = text.get("channel")
    channel = _CHANNEL_NUMBERS.get(channel, "UNKNOWN") if isinstance(channel, int) else _str(channel).upper()
    if channel in _ANSWER_CHANNELS:
        return [AnswerText(value)]
    if any(marker in channel for marker in _REASONING_MARKERS):
        return [ThinkingText(value, step_id=step_id, header=channel.endswith("NOTETAKER_HEADER"))]
    return []  # unknown channels (follow-ups, UI hints) are not text


def _mgw_tool_card(card: dict[str, Any]) -> list[Event]:
    card_id = _first_str(card, "tool_usage_card_id", "toolUsageCardId", "id")
    for key, value in card.items():
        if isinstance(value, dict) and key not in ("metadata",):
            return [ToolUse(card_id=card_id, name=_snake(key), args=_dict(value.get("args")))]
    return []


def _mgw_tool_result(result: dict[str, Any]) -> list[Event]:
    found: list[Source | None] = []
    web = _dict(result.get("web_search"))
    found += [_web_source(item) for item in _list(web.get("webpages", web.get("results")))]
    x_post = _dict(result.get("x_post", result.get("x_search")))
    found += [_x_source(item) for item in _list(x_post.get("posts", x_post.get("results")))]
    sources = _unique_sources(found)
    return [SearchResults(tuple(sources))] if sources else []


def _mgw_generated_image(image: dict[str, Any]) -> list[Event]:
    if "jsonData" in image:
        return _card_events(_json_dict(image["jsonData"]))
    events: list[Event] = []
    card_id = _first_str(image, "id", "card_id")
    if card_id:
        events.append(Card(card_id=card_id, type="render_generated_image", data=dict(image)))
    url = _first_str(image, "image_url", "imageUrl", "url")
    if url:
        # The frame's shape is not documented; without a progress field only a non-partial URL counts as done.
        default = 0 if "-part-" in url else 100
        progress = _int(image.get("progress"), default) if "progress" in image else default
        events.append(
            ImageProgress(
                image_id=_first_str(image, "image_id", "image_uuid", "imageUuid") or card_id or url,
                url=url,
                progress=progress,
                index=_int(image.get("image_index", image.get("imageIndex"))),
                moderated=bool(image.get("moderated")),
            )
        )
    return events


def _mgw_output(output: dict[str, Any]) -> list[Event]:
    events: list[Event] = []
    card = output.get("card_attachment")
    if isinstance(card, dict):
        events += _card_events(_json_dict(card.get("jsonData", card.get("json_data", card))))
    tool_result = output.get("tool_result")
    if isinstance(tool_result, dict):
        events += _mgw_tool_result(tool_result)
    stream_error = output.get("stream_error")
    if stream_error:
        events.append(_stream_error(stream_error))
    return events


def _mgw_done(response: dict[str, Any]) -> list[Event]:
    events: list[Event] = [FinalMessage(response_id=_first_str(response, "id"))]
    status = _str(response.get("status")) or "completed"
    if status != "completed":
        detail = response.get("error") or response.get("status_details")
        error = _stream_error(detail) if isinstance(detail, dict) and detail else None
        message = error.message if error else f"response {status}"
        events.append(StreamError(message=message, code=error.code if error else status))
    return events
