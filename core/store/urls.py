"""Render store addresses for logs and health pages without leaking credentials."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def mask_url(url: str) -> str:
    """``redis://user:secret@host:6379/0?password=x`` → ``redis://user:***@host:6379/0``.

    Passwords (and a userinfo without one) are replaced and the query string dropped (it may carry ``password=``). Anything that does not
    parse as a URL is reduced to its scheme, so a mistyped secret never reaches a log line.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url.split(":", 1)[0] + "://***" if "://" in url else "***"
    if not parts.scheme:
        return "***"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc}"
    elif parts.username:  # a lone userinfo may be a legacy password-only form: hide it too
        netloc = f"***@{netloc}"
    if not netloc:  # unix:///path/redis.sock keeps its three slashes
        return f"{parts.scheme}://{parts.path}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
