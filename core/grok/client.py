"""Grok Web client over curl_cffi (Chrome TLS impersonation).

One ``GrokClient`` per process holds one connection pool. Every call takes the ``Credentials`` of the account the
pool leased, builds cookies and headers per the protocol reference (§2), bounds every wait with a timeout, and turns
failures into ``UpstreamError``. Chat yields typed events from either transport: the REST NDJSON stream or the
``mgw`` WebSocket; both raise before the first event when grok.com refuses the call, so callers can fail over.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from curl_cffi import CurlHttpVersion, CurlMime, CurlMOpt, CurlWsFlag
from curl_cffi.aio import AsyncCurl
from curl_cffi.curl import CurlError
from curl_cffi.requests import AsyncSession
from curl_cffi.requests.exceptions import RequestException

from core.errors import FailureKind, UpstreamError
from core.grok.classify import classify
from core.grok.events import Event
from core.grok.parse import JsonStreamDecoder, is_terminal_mgw, parse_mgw_event, parse_rest_object
from core.settings import Settings

log = logging.getLogger("grok2api")

DEVICE_ENV = {
    "darkModeEnabled": False,
    "devicePixelRatio": 2,
    "screenWidth": 2056,
    "screenHeight": 1329,
    "viewportWidth": 2056,
    "viewportHeight": 1083,
}


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the client needs from one pooled account. Egress values fall back to the global settings."""

    token: str
    account_id: str = ""
    user_id: str | None = None
    cf_clearance: str | None = None
    user_agent: str | None = None
    statsig_id: str | None = None


@dataclass(slots=True)
class ChatCall:
    """One chat turn as grok.com wants it: a single flattened message plus uploaded attachment ids."""

    message: str
    mode: str
    file_ids: list[str] = field(default_factory=list)
    conversation_id: str | None = None  # continue an existing conversation ...
    parent_response_id: str | None = None  # ... after this assistant turn
    disable_search: bool = False
    image_generation_count: int = 2
    temporary: bool = True


@dataclass(frozen=True, slots=True)
class UploadedFile:
    file_id: str
    uri: str


class GrokClient:
    def __init__(self, settings: Settings, *, max_connections: int = 256) -> None:
        self.settings = settings
        self._max_connections = max_connections
        self._session: AsyncSession | None = None
        self._multi: AsyncCurl | None = None
        self._user_ids: dict[str, str] = {}  # account id -> grok user id (needed by mgw); cheap to refetch

    # -- plumbing ---------------------------------------------------------------------------------------------

    @property
    def session(self) -> AsyncSession:
        # Created lazily so importing / building the app does no I/O (cold start) and binds to the running loop.
        if self._session is None:
            # Plain-http upstreams (the simulator, a local proxy) get HTTP/1.1: curl would otherwise attempt an
            # h2c upgrade on every request. Real grok.com is https and negotiates HTTP/2 through TLS ALPN.
            plain_http = self.settings.grok_base_url.startswith("http://")
            self._multi = _multi_with_connection_cache(self._max_connections)
            self._session = AsyncSession(
                async_curl=self._multi,
                max_clients=self._max_connections,
                impersonate=self.settings.impersonate,
                proxy=self.settings.proxy_url,
                http_version=CurlHttpVersion.V1_1 if plain_http else None,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._multi is not None:  # passed in, so the session does not close it
            await self._multi.close()
            self._multi = None

    def cookie(self, creds: Credentials, *, with_user_id: bool = False) -> str:
        parts = [f"sso={creds.token}", f"sso-rw={creds.token}"]
        clearance = creds.cf_clearance or self.settings.cf_clearance
        if clearance:
            parts.append(f"cf_clearance={clearance}")
        if self.settings.cf_cookies:
            parts.append(self.settings.cf_cookies.strip().strip(";"))
        if with_user_id and creds.user_id:
            parts.append(f"x-userid={creds.user_id}")
        return "; ".join(parts)

    def headers(
        self,
        creds: Credentials,
        *,
        referer: str = "/",
        content_type: str | None = "application/json",
        request_id: bool = True,
        statsig: bool = True,
    ) -> dict[str, str]:
        base = self.settings.grok_base_url.rstrip("/")
        headers = {
            "Accept": "*/*",
            "Accept-Language": "en-US,en;q=0.9",
            "Cookie": self.cookie(creds),
            "Origin": base,
            "Referer": base + referer,
            "User-Agent": creds.user_agent or self.settings.user_agent,
            "Sec-Fetch-Dest": "empty",
            "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Site": "same-origin",
            "Priority": "u=1, i",
        }
        if content_type:
            headers["Content-Type"] = content_type
        if request_id:
            headers["x-xai-request-id"] = str(uuid.uuid4())
        statsig_id = creds.statsig_id or self.settings.statsig_id
        if statsig and statsig_id:  # only ever what the operator pasted from their own browser
            headers["x-statsig-id"] = statsig_id
        return headers

    def url(self, path: str) -> str:
        return self.settings.grok_base_url.rstrip("/") + path

    async def _request(
        self, method: str, url: str, *, what: str, headers: dict[str, str], limit: float | None = None, **kwargs: Any
    ) -> Any:
        """A buffered request. Non-2xx becomes a classified ``UpstreamError``."""
        timeout = limit or min(self.settings.request_timeout, 60.0)
        try:
            response = await asyncio.wait_for(
                self.session.request(method, url, headers=headers, timeout=timeout, **kwargs), timeout + 1
            )
        except TimeoutError:
            raise UpstreamError(FailureKind.TIMEOUT, f"grok.com did not answer {what} within {timeout:g}s") from None
        except RequestException as exc:
            raise _network_error(exc, what) from None
        if response.status_code >= 400:
            raise classify(response.status_code, dict(response.headers), response.text, what=what)
        return response

    # -- account calls ----------------------------------------------------------------------------------------

    async def rate_limits(self, creds: Credentials, mode: str) -> dict[str, Any]:
        """``POST /rest/rate-limits`` for one mode: ``{windowSizeSeconds, remainingQueries, totalQueries, ...}``."""
        response = await self._request(
            "POST", self.url("/rest/rate-limits"), what="rate-limits", headers=self.headers(creds),
            json={"modelName": mode}, limit=self.settings.connect_timeout + 10,
        )
        return _json_body(response, "rate-limits")

    async def quota_info(self, creds: Credentials) -> dict[str, Any]:
        """``POST /rest/media/imagine/quota_info``: the five media quotas."""
        response = await self._request(
            "POST", self.url("/rest/media/imagine/quota_info"), what="quota_info",
            headers=self.headers(creds, referer="/imagine"), json={}, limit=self.settings.connect_timeout + 10,
        )
        return _json_body(response, "quota_info")

    async def user_id(self, creds: Credentials) -> str:
        """The account's grok user id (``GET /api/auth/session``), cached per account in this process."""
        if creds.user_id:
            return creds.user_id
        key = creds.account_id or creds.token[-16:]
        if key in self._user_ids:
            return self._user_ids[key]
        response = await self._request(
            "GET", self.url("/api/auth/session"), what="auth session",
            headers=self.headers(creds, content_type=None, statsig=False), limit=self.settings.connect_timeout + 10,
        )
        data = _json_body(response, "auth session")
        status = str(data.get("status", "")).lower()
        if status in ("unauthenticated", "blocked"):
            kind = FailureKind.BLOCKED if status == "blocked" else FailureKind.UNAUTHORIZED
            raise UpstreamError(kind, f"grok.com session is {status}", upstream_status=401)
        user = data.get("session") or data.get("user") or {}
        user_id = user.get("userId") or user.get("id") if isinstance(user, dict) else None
        if not user_id:
            raise UpstreamError(FailureKind.SERVER, "grok.com session answer carries no user id")
        self._user_ids[key] = user_id
        return user_id

    async def upload(self, creds: Credentials, *, name: str, mime: str, data: bytes) -> UploadedFile:
        """Upload an attachment (v2 multipart endpoint, legacy JSON endpoint as fallback on 404)."""
        mime_part = CurlMime()
        mime_part.addpart(name="file", filename=name, content_type=mime, data=data)
        try:
            response = await self._request(
                "POST", self.url("/http/upload-file-v2/direct"), what="upload",
                headers=self.headers(creds, content_type=None, request_id=False), multipart=mime_part,
                limit=self.settings.connect_timeout + 60,
            )
        except UpstreamError as exc:
            if exc.upstream_status != 404:
                raise
            response = await self._request(
                "POST", self.url("/rest/app-chat/upload-file"), what="upload", headers=self.headers(creds),
                json={"fileName": name, "fileMimeType": mime, "content": base64.b64encode(data).decode()},
                limit=self.settings.connect_timeout + 60,
            )
        finally:
            mime_part.close()
        body = _json_body(response, "upload")
        meta = body.get("fileMetadata") if isinstance(body.get("fileMetadata"), dict) else body
        if body.get("terminalError"):
            raise UpstreamError(FailureKind.BAD_REQUEST, f"grok.com rejected the upload: {body['terminalError']}")
        file_id = meta.get("fileMetadataId") or meta.get("fileId") or body.get("uploadId")
        if not file_id:
            raise UpstreamError(FailureKind.SERVER, "grok.com upload answer carries no file id")
        return UploadedFile(file_id=str(file_id), uri=str(meta.get("fileUri", "")))

    async def download(self, creds: Credentials, path: str) -> tuple[bytes, str]:
        """Fetch an asset (``users/<uid>/...``) with the owning account's cookies: direct links 403."""
        url = self.settings.grok_assets_url.rstrip("/") + "/" + path.lstrip("/")
        headers = self.headers(creds, content_type=None, statsig=False)
        response = await self._request("GET", url, what="asset download", headers=headers)
        return response.content, response.headers.get("content-type", "application/octet-stream")

    # -- chat -------------------------------------------------------------------------------------------------

    def chat(self, creds: Credentials, call: ChatCall) -> AsyncIterator[Event]:
        """Stream one chat turn as events, over the configured transport."""
        if self.settings.chat_transport == "mgw":
            return self._chat_mgw(creds, call)
        return self._chat_rest(creds, call)

    def rest_payload(self, call: ChatCall) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "temporary": call.temporary,
            "message": call.message,
            "modeId": call.mode,
            "fileAttachments": list(call.file_ids),
            "imageAttachments": [],
            "disableSearch": call.disable_search,
            "enableImageGeneration": True,
            "returnImageBytes": False,
            "returnRawGrokInXaiRequest": False,
            "enableImageStreaming": True,
            "imageGenerationCount": call.image_generation_count,
            "forceConcise": False,
            "toolOverrides": {},
            "enableSideBySide": True,
            "sendFinalMetadata": True,
            "isReasoning": False,
            "disableTextFollowUps": True,
            "responseMetadata": {},
            "disableMemory": True,
            "forceSideBySide": False,
            "isAsyncChat": False,
            "disableSelfHarmShortCircuit": False,
            "deviceEnvInfo": DEVICE_ENV,
            "collectionIds": [],
            "disabledConnectorIds": [],
        }
        if call.parent_response_id:
            payload["parentResponseId"] = call.parent_response_id
        return payload

    async def _chat_rest(self, creds: Credentials, call: ChatCall) -> AsyncIterator[Event]:
        if call.conversation_id:
            path = f"/rest/app-chat/conversations/{call.conversation_id}/responses"
            referer = f"/c/{call.conversation_id}"
        else:
            path, referer = "/rest/app-chat/conversations/new", "/"
        settings = self.settings
        try:
            # asyncio.timeout rather than wait_for (here and per chunk below): the same deadline and TimeoutError,
            # without wait_for's extra task and event-loop round per call.
            async with asyncio.timeout(settings.first_byte_timeout):
                response = await self.session.request(
                    "POST", self.url(path), headers=self.headers(creds, referer=referer),
                    json=self.rest_payload(call), stream=True,
                    timeout=(settings.connect_timeout, settings.stream_idle_timeout),
                )
        except TimeoutError:
            raise UpstreamError(
                FailureKind.TIMEOUT, f"grok.com sent no response headers within {settings.first_byte_timeout:g}s"
            ) from None
        except RequestException as exc:
            raise _network_error(exc, "chat") from None

        try:
            if response.status_code != 200:
                body = await _read_capped(response)
                raise classify(response.status_code, dict(response.headers), body, what="chat")
            async for event in ndjson_events(response, settings, overall=settings.request_timeout):
                yield event
        finally:
            await response.aclose()

    async def open_ws(self, creds: Credentials, url: str, *, what: str) -> Any:
        """A WebSocket to grok.com with a browser's headers and the account's cookies (``creds`` with its user id,
        when known, for ``x-userid``). A handshake that times out or is refused is an ``UpstreamError`` naming
        the socket (``what``)."""
        settings = self.settings
        headers = {
            "Origin": settings.grok_base_url.rstrip("/"),
            "User-Agent": creds.user_agent or settings.user_agent,
            "Accept-Language": "en-US,en;q=0.9",
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
            "Cookie": self.cookie(creds, with_user_id=True),
        }
        try:
            return await asyncio.wait_for(
                self.session.ws_connect(url, headers=headers, timeout=settings.connect_timeout),
                settings.first_byte_timeout,
            )
        except TimeoutError:
            raise UpstreamError(FailureKind.TIMEOUT, f"{what} WebSocket handshake timed out") from None
        except (RequestException, CurlError) as exc:  # a refused upgrade surfaces as a bare CurlError (22)
            raise _ws_handshake_error(exc, what) from None

    async def _chat_mgw(self, creds: Credentials, call: ChatCall) -> AsyncIterator[Event]:
        settings = self.settings
        user_id = await self.user_id(creds)
        creds_uid = replace(creds, user_id=user_id)
        url = f"{settings.grok_ws_url}{'&' if '?' in settings.grok_ws_url else '?'}uid={user_id}"
        ws = await self.open_ws(creds_uid, url, what="mgw")

        try:
            session_id = call.conversation_id or ""
            x_grok: dict[str, Any] = {
                "protocol_capabilities": ["conversation_attached", "custom_methods_v1"],
                "use_chunk": True,
                "enable_side_by_side": True,
                "force_side_by_side": False,
                "enable_image_generation": True,
                "image_generation_count": call.image_generation_count,
                "disable_text_follow_ups": True,
                "disable_artifact": True,
                "force_concise": False,
                "keep_context": False,
                "is_temporary": call.temporary,
                "disable_memory": True,
            }
            if call.conversation_id:
                x_grok.update(conversation_id=call.conversation_id, load_existing=True, needs_history=False)
            now = int(time.time() * 1000)
            await ws.send_str(json.dumps({
                "session_id": session_id,
                "event": {"type": "session.create", "event_id": f"evt_init_{uuid.uuid4()}",
                          "session": {"model": call.mode, "x_grok": x_grok}},
            }))
            item: dict[str, Any] = {
                "type": "message",
                "role": "user",
                "x_grok": {
                    "client_message_id": str(uuid.uuid4()),
                    "input_chunks": [
                        *({"mention": {"target": {"file_mention": {"file_id": f}}}} for f in call.file_ids),
                        {"text": {"text": call.message}},
                    ],
                },
            }
            create: dict[str, Any] = {"type": "conversation.item.create", "event_id": f"evt_msg_{now}", "item": item}
            if call.file_ids:
                item["file_attachment_ids"] = list(call.file_ids)
                create["file_attachment_ids"] = list(call.file_ids)
            if call.parent_response_id:
                create["parent_response_id"] = call.parent_response_id
            await ws.send_str(json.dumps({"session_id": session_id, "event": create}))
            await ws.send_str(json.dumps({
                "session_id": session_id, "event": {"type": "response.create", "event_id": f"evt_resp_{now}"},
            }))
            deadline = time.monotonic() + settings.request_timeout
            while True:
                remaining = min(settings.stream_idle_timeout, deadline - time.monotonic())
                if remaining <= 0:
                    raise UpstreamError(FailureKind.TIMEOUT, "grok.com stream exceeded the request time limit")
                try:
                    async with asyncio.timeout(remaining):
                        raw, flags = await ws.recv()
                except TimeoutError:
                    raise UpstreamError(
                        FailureKind.TIMEOUT, f"grok.com stream stalled for {settings.stream_idle_timeout:g}s"
                    ) from None
                except CurlError as exc:
                    raise UpstreamError(FailureKind.STREAM, _plain(exc, "mgw WebSocket", mid_answer=True)) from None
                if flags & CurlWsFlag.CLOSE:
                    raise UpstreamError(FailureKind.STREAM, "grok.com closed the mgw WebSocket before the turn ended")
                if not flags & (CurlWsFlag.TEXT | CurlWsFlag.BINARY):
                    continue  # ping/pong control frames
                try:
                    frame = json.loads(raw)
                except ValueError:
                    continue  # lenient: unknown frames are skipped
                if not isinstance(frame, dict):
                    continue
                event_type = (frame.get("event") or {}).get("type") if isinstance(frame.get("event"), dict) else None
                if event_type == "ping":
                    await ws.send_str(json.dumps({"event": {"type": "pong", "event_id": f"evt_hb_{now}"}}))
                    continue
                for event in parse_mgw_event(frame):
                    yield event
                if is_terminal_mgw(frame):
                    return
        finally:
            try:
                await ws.close(timeout=1.0)
            except Exception:  # closing a dead socket must not mask the real outcome
                pass


def _multi_with_connection_cache(size: int) -> AsyncCurl | None:
    """A curl multi handle that keeps up to ``size`` idle connections for reuse.

    By default libcurl sizes its connection cache at 4 × the transfers running *at that moment*, so whenever a
    burst of concurrent requests winds down it closes the oldest idle connections ("Connection pool is full,
    closing the oldest") and the next burst opens new ones: under steady load at 16 concurrent requests about
    one request in six paid a new TCP connection (and on grok.com a new TLS handshake). curl_cffi's
    ``AsyncCurl.setopt`` hands long options to the variadic ``curl_multi_setopt`` as a pointer, which libcurl
    reads as an out-of-range number and ignores, so the value is passed as the argument itself here. Returns
    ``None`` (curl_cffi's own multi handle, libcurl's default cache) if curl_cffi's internals are not as expected.
    """
    try:
        from curl_cffi._wrapper import ffi, lib

        multi = AsyncCurl()
        lib.curl_multi_setopt(multi._curlm, CurlMOpt.MAXCONNECTS, ffi.cast("void *", size))
    except (ImportError, AttributeError, TypeError):
        return None
    return multi


async def _next_chunk(chunks: AsyncIterator[bytes], idle: float, deadline: float) -> bytes:
    remaining = min(idle, deadline - time.monotonic())
    if remaining <= 0:
        raise UpstreamError(FailureKind.TIMEOUT, "grok.com stream exceeded the request time limit")
    try:
        async with asyncio.timeout(remaining):
            return await anext(chunks)
    except TimeoutError:
        raise UpstreamError(FailureKind.TIMEOUT, f"grok.com stream stalled for {idle:g}s") from None
    except CurlError as exc:
        raise UpstreamError(FailureKind.STREAM, _plain(exc, "chat stream", mid_answer=True)) from None


async def _read_capped(response: Any, limit: int = 65536) -> str:
    body = bytearray()
    try:
        async for chunk in response.aiter_content():
            body.extend(chunk)
            if len(body) >= limit:
                break
    except RequestException:
        pass
    return body.decode("utf-8", "replace")


def _json_body(response: Any, what: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise UpstreamError(FailureKind.SERVER, f"grok.com answered {what} with non-JSON") from None
    if not isinstance(data, dict):
        raise UpstreamError(FailureKind.SERVER, f"grok.com answered {what} with an unexpected shape")
    return data


# libcurl error codes (CURLE_*) as plain reasons. The raw "curl: (18) ..." text names hosts, proxies and
# libcurl internals: it goes to the server log only (see ``_plain``).
_CURL_REASONS = {
    5: "the proxy's address did not resolve",
    6: "its address did not resolve",
    7: "the connection failed or was refused",
    16: "the HTTP/2 connection failed",
    35: "the TLS handshake failed",
    47: "it redirected too many times",
    52: "it closed the connection without answering",
    55: "the connection broke while sending",
    56: "the connection broke while receiving",
    60: "its TLS certificate was not accepted",
    97: "the proxy refused the connection",
}
_CLOSED_MID_ANSWER = {18, 52, 55, 56}  # partial body, empty reply, send/recv failure
_CURL_CODE = re.compile(r"curl: \((\d+)\)")


def _curl_code(exc: BaseException) -> int:
    code = getattr(exc, "code", 0)
    if isinstance(code, int) and code:
        return int(code)
    found = _CURL_CODE.search(str(exc))
    return int(found.group(1)) if found else 0


def _is_timeout(exc: BaseException) -> bool:
    return _curl_code(exc) == 28 or "timed out" in str(exc).lower() or "timeout" in type(exc).__name__.lower()


def _plain(exc: BaseException, what: str, *, mid_answer: bool = False) -> str:
    """A sentence for the client about a failed transfer; the raw libcurl text is logged, never shown."""
    log.warning("grok.com %s failed: %s: %s", what, type(exc).__name__, exc)
    code = _curl_code(exc)
    if _is_timeout(exc):
        connecting = "connect" in str(exc).lower() or "connecttimeout" in type(exc).__name__.lower()
        return "timed out connecting to grok.com" if connecting else "timed out waiting for grok.com"
    if mid_answer:
        if code == 92:
            return "grok.com reset the HTTP/2 stream mid-answer"
        if code in _CLOSED_MID_ANSWER:
            return "grok.com closed the connection mid-answer"
        return "the connection to grok.com broke mid-answer"
    return f"could not reach grok.com: {_CURL_REASONS.get(code, 'network error')}"


def _network_error(exc: Exception, what: str) -> UpstreamError:
    kind = FailureKind.TIMEOUT if _is_timeout(exc) else FailureKind.NETWORK
    return UpstreamError(kind, f"{_plain(exc, what)} (during {what})")


async def ndjson_events(response: Any, settings: Settings, *, overall: float) -> AsyncIterator[Event]:
    """The events of an accepted NDJSON answer (REST chat, in-chat media), each chunk bounded by
    ``stream_idle_timeout`` and the whole by ``overall`` seconds. The caller checks the status and closes."""
    decoder = JsonStreamDecoder()
    chunks = response.aiter_content()
    deadline = time.monotonic() + overall
    while True:
        try:
            chunk = await _next_chunk(chunks, settings.stream_idle_timeout, deadline)
        except StopAsyncIteration:
            break
        for obj in decoder.feed(chunk):
            for event in parse_rest_object(obj):
                yield event
    for obj in decoder.close():
        for event in parse_rest_object(obj):
            yield event


def _ws_handshake_error(exc: Exception, what: str) -> UpstreamError:
    text = str(exc)
    for status in (401, 403, 429):
        if str(status) in text:
            kind = {401: FailureKind.UNAUTHORIZED, 403: FailureKind.CLOUDFLARE, 429: FailureKind.RATE_LIMITED}[status]
            log.warning("grok.com %s WebSocket handshake refused: %s", what, text)
            return UpstreamError(kind, f"grok.com refused the {what} WebSocket handshake ({status})",
                                 upstream_status=status)
    return _network_error(exc, f"{what} WebSocket")


