"""The web console: one HTML shell at ``/admin`` and its static assets under ``/admin/assets/``.

No build step: the ES modules, the stylesheet and the icons in ``api/console/static`` are served as they are in
the package, on every platform. Each asset is addressed by a content hash (``app.3f2a9c1b7d04.js``) and cached
for a year (``immutable``); the shell is ``no-cache`` and carries an import map from each module's plain name to
its hashed URL, so a changed module reaches browsers at the next page load without renaming anything in the
source. The shell needs no session (it shows the login page); every data call it makes goes to the admin API,
which checks the session itself.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from core.errors import NotFound

STATIC = Path(__file__).resolve().parent / "console" / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Asset:
    name: str  # the hashed name, e.g. "app.3f2a9c1b7d04.js"
    body: bytes
    gzipped: bytes | None  # precompressed once (None when it would not be smaller)
    media_type: str
    etag: str


@dataclass(frozen=True)
class Bundle:
    assets: dict[str, Asset]  # hashed name → asset
    urls: dict[str, str]  # source path relative to STATIC ("pages/keys.js") → its URL
    html: bytes
    csp: str
    total_bytes: int


def _hashed(relative: str, digest: str) -> str:
    stem, dot, ext = relative.replace("/", "~").rpartition(".")
    return f"{stem}.{digest}.{ext}" if dot else f"{relative}.{digest}"


@lru_cache(maxsize=1)
def bundle() -> Bundle:
    """Read and hash the assets once per process (a few dozen kilobytes)."""
    assets: dict[str, Asset] = {}
    urls: dict[str, str] = {}
    total = 0
    for path in sorted(STATIC.rglob("*")):
        if not path.is_file() or path.name == "index.html":
            continue
        relative = path.relative_to(STATIC).as_posix()
        body = path.read_bytes()
        total += len(body)
        digest = hashlib.sha256(body).hexdigest()[:12]
        name = _hashed(relative, digest)
        media_type = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        packed = gzip.compress(body, 9, mtime=0)
        assets[name] = Asset(name, body, packed if len(packed) < len(body) else None, media_type, f'"{digest}"')
        urls[relative] = f"/admin/assets/{name}"
    import_map = json.dumps(
        {"imports": {f"g2a/{rel}": url for rel, url in urls.items() if rel.endswith(".js")}},
        separators=(",", ":"), sort_keys=True,
    )
    template = (STATIC / "index.html").read_text(encoding="utf-8")
    total += len(template.encode())
    html = (
        template.replace("{{IMPORTMAP}}", import_map)
        .replace("{{CSS}}", urls["console.css"])
        .replace("{{APP}}", urls["app.js"])
        .replace("{{ICON}}", urls["icon.svg"])
    )
    map_hash = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    csp = "; ".join((
        "default-src 'none'",
        f"script-src 'self' 'sha256-{map_hash}'",
        "style-src 'self'",
        "img-src 'self' data: blob: https: http:",  # media links may live on S3 / a public bucket
        "media-src 'self' blob: https: http:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))
    return Bundle(assets, urls, html.encode(), csp, total)


def _shell() -> HTMLResponse:
    b = bundle()
    return HTMLResponse(b.html, headers={
        "Cache-Control": "no-cache",
        "Content-Security-Policy": b.csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    })


@router.get("/admin")
async def console() -> HTMLResponse:
    return _shell()


@router.get("/admin/")
async def console_slash() -> RedirectResponse:
    return RedirectResponse("/admin", status_code=308)


@router.api_route("/admin/assets/{name}", methods=["GET", "HEAD"])
async def asset(name: str, request: Request) -> Response:
    found = bundle().assets.get(name)
    if found is None:
        raise NotFound(f"no console asset {name!r}", param="name")
    headers = {"Cache-Control": IMMUTABLE, "ETag": found.etag, "X-Content-Type-Options": "nosniff",
               "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    payload = found.body
    if found.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "").lower():
        payload = found.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Length"] = str(len(payload))
    return Response(b"" if request.method == "HEAD" else payload, media_type=found.media_type, headers=headers)
