"""Images Grok generates inside a chat answer, made to work for every client.

grok.com links them to its assets host, which refuses anyone without the account's cookies. ``ChatMedia`` fetches
each with the answering account's credentials, keeps it in the media store and gives the link the answer shows:
our absolute ``/media/<id>.<ext>`` URL, or (``IMAGE_FORMAT=b64_json``) a data URL when the image is small enough.

Cost: an answer without images costs nothing. Each image costs one upstream download and one store command (the
record's ``EVALSHA``; a data-URL image is not stored: zero).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.media.store import MediaStore, data_url

if TYPE_CHECKING:
    from core.grok.client import Credentials, GrokClient

log = logging.getLogger("grok2api")
DATA_URL_MAX_BYTES = 1024 * 1024  # inline only what keeps a buffered response (Vercel 4.5 MB) well inside limits


@dataclass(slots=True)
class ChatMedia:
    media: MediaStore
    client: GrokClient
    base_url: str
    image_format: str = "url"  # "url" | "b64_json"
    assets_url: str = ""

    async def links(self, creds: Credentials, paths: list[str]) -> dict[str, str | None]:
        """path → link for each upstream image path; None for an image that could not be fetched or stored
        (logged; the answer then leaves it out rather than show a link that cannot open)."""
        results = await asyncio.gather(*(self._link(creds, path) for path in paths))
        return dict(zip(paths, results, strict=True))

    async def _link(self, creds: Credentials, path: str) -> str | None:
        relative = self._relative(path)
        if relative is None:
            return path  # not on the assets host: nothing we could fetch better
        try:
            data, mime = await self.client.download(creds, relative)
            if not mime.startswith("image/"):
                mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png" if data[:4] == b"\x89PNG" else mime
            if self.image_format == "b64_json" and len(data) <= DATA_URL_MAX_BYTES:
                return data_url(data, mime.split(";")[0])
            item = await self.media.put(data, mime=mime, kind="image", account_id=creds.account_id, source="chat")
            return self.media.url(item, base_url=self.base_url)
        except Exception as exc:
            log.warning("in-chat image %s not kept: %s", path.rsplit("/", 2)[-2:], getattr(exc, "message", exc))
            return None

    def _relative(self, path: str) -> str | None:
        if not path.startswith(("http://", "https://")):
            return path.lstrip("/")
        base = self.assets_url.rstrip("/") + "/"
        if self.assets_url and path.startswith(base):
            return path[len(base):]
        if path.startswith("https://assets.grok.com/"):
            return path[len("https://assets.grok.com/"):]
        return None
