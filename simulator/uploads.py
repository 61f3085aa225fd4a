"""File uploads (§8.1): legacy JSON+base64 and v2 multipart. Stored bytes are served by the assets host."""

from __future__ import annotations

import base64
import binascii
import uuid

from starlette.requests import Request
from starlette.responses import Response

from simulator import gates
from simulator.chat import read_json
from simulator.media import image_size, sniff_mime
from simulator.responses import PAYLOAD_TOO_LARGE, invalid_argument, json_response
from simulator.rest import milli_time
from simulator.state import Account, SimState, StoredFile


def _sim(request: Request) -> SimState:
    return request.app.state.sim


def _validate(state: SimState, data: bytes, mime: str) -> Response | None:
    if len(data) > state.config.max_upload_bytes:
        return json_response(PAYLOAD_TOO_LARGE, 413)
    if not data:
        return json_response(invalid_argument("Empty file"), 400)
    if mime.startswith("image/") or sniff_mime(data, "").startswith("image/"):
        size = image_size(data)
        if size is not None and size[0] <= 1 and size[1] <= 1:
            return json_response(invalid_argument("Image is too small"), 400)
    return None


def _store(state: SimState, account: Account, name: str, mime: str, data: bytes, source: str) -> StoredFile:
    return state.store_upload(account, name or "file", mime or sniff_mime(data), data, source)


async def upload_legacy(request: Request) -> Response:
    """``POST /rest/app-chat/upload-file`` ``{"fileName","fileMimeType","content":<base64>}``."""
    state = _sim(request)
    account = gates.check(state, request.headers, statsig=True)
    if isinstance(account, gates.GateFailure):
        return account.response(request.url.path)
    body = await read_json(request)
    content = body.get("content") if body else None
    if not isinstance(content, str):
        return json_response(invalid_argument("content is required"), 400)
    if content.startswith("data:"):
        content = content.partition(",")[2]
    try:
        data = base64.b64decode(content + "=" * (-len(content) % 4), validate=False)
    except (binascii.Error, ValueError):
        return json_response(invalid_argument("content is not valid base64"), 400)
    name = body.get("fileName") if isinstance(body.get("fileName"), str) else ""
    mime = body.get("fileMimeType") if isinstance(body.get("fileMimeType"), str) else ""
    mime = mime or sniff_mime(data)
    if (error := _validate(state, data, mime)) is not None:
        return error
    stored = _store(state, account, name, mime, data, "legacy")
    return json_response({
        "fileMetadataId": stored.id,
        "fileMimeType": stored.mime,
        "fileName": stored.name,
        "fileUri": stored.uri,
        "parsedFileUri": "",
        "createTime": milli_time(state.clock.now()),
    })


async def upload_v2(request: Request) -> Response:
    """``POST /http/upload-file-v2/direct`` multipart, part ``file`` (+ optional ``file_source``)."""
    state = _sim(request)
    account = gates.check(state, request.headers)
    if isinstance(account, gates.GateFailure):
        return account.response(request.url.path)
    body = await request.body()
    if len(body) > state.config.max_upload_bytes + 64 * 1024:
        return json_response(PAYLOAD_TOO_LARGE, 413)
    parts = parse_multipart(request.headers.get("content-type", ""), body)
    upload = parts.get("file")
    if upload is None:
        return json_response(invalid_argument("multipart part 'file' is required"), 400)
    filename, mime, data = upload
    mime = mime or sniff_mime(data)
    if (error := _validate(state, data, mime)) is not None:
        return error
    stored = _store(state, account, filename, mime, data, "v2")
    return json_response({
        "uploadId": str(uuid.uuid4()),
        "fileMetadata": {"fileMetadataId": stored.id, "fileUri": stored.uri},
    })


def _params(header: str) -> tuple[str, dict[str, str]]:
    value, *rest = header.split(";")
    params: dict[str, str] = {}
    for item in rest:
        key, _, val = item.strip().partition("=")
        if key:
            params[key.lower()] = val.strip().strip('"')
    return value.strip().lower(), params


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str, str, bytes]]:
    """Minimal ``multipart/form-data`` parser: name → (filename, content type, bytes)."""
    kind, params = _params(content_type)
    boundary = params.get("boundary")
    if kind != "multipart/form-data" or not boundary:
        return {}
    parts: dict[str, tuple[str, str, bytes]] = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n")
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        _, disposition = _params(headers.get("content-disposition", ""))
        name = disposition.get("name")
        if name:
            parts[name] = (disposition.get("filename", ""), headers.get("content-type", ""),
                           data.removesuffix(b"\r\n"))
    return parts
