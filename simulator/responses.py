"""HTTP responses in grok.com's shapes: edge headers, gRPC-style error bodies, Cloudflare pages (§5.1)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.responses import Response

# Error bodies exactly as captured / as gateways' fixtures have them.
UNAUTHENTICATED = {"error": {"code": 16, "message": "unauthenticated: missing or invalid session", "details": []}}
BLOCKED = {"code": 7, "message": "User is blocked [WKE=unauthorized:blocked-user]", "details": []}
ANTI_BOT = {"error": {"code": 7, "message": "Request rejected by anti-bot rules.", "details": []}}
TOO_MANY_REQUESTS = {"error": {"code": 8, "message": "Too many requests", "details": []}}
NOT_FOUND = {"code": 5, "message": "Not Found"}
PAYLOAD_TOO_LARGE = {"error": {"code": 8, "message": "payload too large"}}


def mode_unavailable(mode: str) -> dict[str, Any]:
    return {"error": {"code": 7, "message": f"Mode {mode} is not available on your subscription", "details": []}}


def invalid_argument(message: str) -> dict[str, Any]:
    return {"error": {"code": 3, "message": message, "details": []}}


def cf_ray() -> str:
    return f"{secrets.token_hex(8)}-SJC"


def edge_headers(trace_id: str | None = None) -> dict[str, str]:
    """Headers every grok.com response carries behind Cloudflare (captured 2025-09)."""
    headers = {
        "server": "cloudflare",
        "cf-ray": cf_ray(),
        "cf-cache-status": "DYNAMIC",
        "access-control-allow-origin": "*",
        "access-control-expose-headers": "*",
        "strict-transport-security": "max-age=31536000; includeSubDomains",
        "vary": "Origin, origin, access-control-request-method, access-control-request-headers, Accept-Encoding",
    }
    if trace_id:
        headers["x-trace-id"] = trace_id
    return headers


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, status, {**edge_headers(), **(headers or {})}, media_type="application/json")


def not_found() -> Response:
    return json_response(NOT_FOUND, 404)


# The captured head of the challenge page; the opaque tail (nonces, loader script) is reconstructed minimally.
_CHALLENGE_HEAD = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title><meta http-equiv="Content-Type" '
    'content="text/html; charset=UTF-8"><meta http-equiv="X-UA-Compatible" content="IE=Edge"><meta name="robots" '
    'content="noindex,nofollow"><meta name="viewport" content="width=device-width,initial-scale=1"><style>*{box-'
    "sizing:border-box;margin:0;padding:0}html{line-height:1.15;-webkit-text-size-adjust:100%;color:#313131;font-"
    'family:system-ui,-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-'
    'serif,"Apple Color Emoji","Segoe UI Emoji","Segoe UI Symbol","Noto Color Emoji"}body{display:flex;flex-'
    "direction:column;height:100vh;min-height:100vh}.main-content{margin:8rem auto;padding-left:1.5rem;max-width:"
    "60rem}@media (width <= 720px){.main-content{margin-top:4rem}}#challenge-error-text{background-repeat:no-"
    'repeat;background-size:contain;padding-left:34px}</style><meta http-equiv="refresh" content="360"></head>'
    '<body><div class="main-wrapper" role="main"><div class="main-content"><noscript><div class="h2"><span '
    'id="challenge-error-text">Enable JavaScript and cookies to continue</span></div></noscript></div></div>'
)


def challenge_page(path: str) -> Response:
    """Cloudflare managed challenge: 403 text/html "Just a moment..." with ``server: cloudflare``."""
    ray = secrets.token_hex(8)
    token = secrets.token_urlsafe(24)
    html = (
        _CHALLENGE_HEAD
        + "<script>(function(){window._cf_chl_opt = {cvId: '3',cZone: 'grok.com',cType: 'managed',"
        + f"cRay: '{ray}',cH: '{secrets.token_urlsafe(32)}',cUPMDTk:\"{path}?__cf_chl_tk={token}\",cFPWv: 'g',"
        + f"cITimeS: '{secrets.randbelow(10**9)}'}};var cpo = document.createElement('script');"
        + f"cpo.src = '/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray={ray}';"
        + "window._cf_chl_opt.cOgUHash = location.hash === '' && location.href.indexOf('#') !== -1 ? '#' : "
        + "location.hash;window._cf_chl_opt.cOgUQuery = location.search === '' && location.href.slice(0, "
        + "location.href.length - window._cf_chl_opt.cOgUHash.length).indexOf('?') !== -1 ? '?' : "
        + "location.search;if (window.history && window.history.replaceState) {var ogU = location.pathname + "
        + "window._cf_chl_opt.cOgUQuery + window._cf_chl_opt.cOgUHash;history.replaceState(null, null, "
        + f"\"{path}?__cf_chl_rt_tk={token}\" + window._cf_chl_opt.cOgUHash);cpo.onload = function() "
        + "{history.replaceState(null, null, ogU);}}document.getElementsByTagName('head')[0].appendChild(cpo);"
        + "}());</script></body></html>"
    )
    headers = {
        "server": "cloudflare",
        "cf-ray": f"{ray}-SJC",
        "cf-mitigated": "challenge",
        "cache-control": "private, max-age=0, no-store, no-cache, must-revalidate, post-check=0, pre-check=0",
        "expires": "Thu, 01 Jan 1970 00:00:01 GMT",
        "x-frame-options": "SAMEORIGIN",
    }
    return Response(html, 403, headers, media_type="text/html; charset=UTF-8")


def asset_forbidden() -> Response:
    """assets.grok.com without the owner's cookies: a plain 403 page (not a challenge)."""
    html = (
        "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>"
        "\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(html, 403, {"server": "cloudflare", "cf-ray": cf_ray()}, media_type="text/html")


def asset_not_found() -> Response:
    html = (
        "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>"
        "\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(html, 404, {"server": "cloudflare", "cf-ray": cf_ray()}, media_type="text/html")
