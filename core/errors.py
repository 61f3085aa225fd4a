"""Typed errors. Each carries what an API layer needs to render it (status, type, code, param).

The HTTP layer maps these to OpenAI or Anthropic error bodies; nothing else ever reaches a client.
"""

from __future__ import annotations

from enum import StrEnum


class GatewayError(Exception):
    """Base for every error a client may see."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimited(GatewayError):
    """429 in OpenAI's shape; ``retry_after`` (seconds) becomes the ``Retry-After`` header."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class NoAccountAvailable(RateLimited):
    """No pooled account can serve the request right now (all cooling, exhausted, busy or wrong tier)."""

    code = "no_account_available"


class StoreUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "store_unavailable"


class FailureKind(StrEnum):
    """Why an upstream call failed. The pool's failure rules and the client-facing status key off this."""

    UNAUTHORIZED = "unauthorized"  # 401: session expired or logged out
    BLOCKED = "blocked"  # 403 blocked-user: the account itself is banned
    CLOUDFLARE = "cloudflare"  # 403 HTML challenge: egress / cf_clearance / user-agent problem
    ANTI_BOT = "anti_bot"  # code 7 anti-bot rejection: x-statsig-id / fingerprint problem
    RATE_LIMITED = "rate_limited"  # 429 or in-stream usage limit
    BAD_REQUEST = "bad_request"  # 4xx the upstream blamed on the request itself
    SERVER = "server"  # 5xx
    NETWORK = "network"  # connect/reset/TLS errors
    TIMEOUT = "timeout"  # no first byte, or the stream stalled, within the configured time
    STREAM = "stream"  # in-stream error line, fatal stream error, or the stream ended early


class UpstreamError(GatewayError):
    """grok.com (or the simulator) failed. ``kind`` drives failover and account state."""

    status = 502
    type = "upstream_error"

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        quota_exhausted: bool = False,
    ) -> None:
        super().__init__(message, code=f"upstream_{kind.value}")
        self.kind = kind
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.quota_exhausted = quota_exhausted
        if kind is FailureKind.TIMEOUT:
            self.status = 504
            self.type = "timeout_error"
        elif kind is FailureKind.RATE_LIMITED:
            self.status = 429
            self.type = "rate_limit_error"

    @property
    def account_at_fault(self) -> bool:
        """True when the account (not our egress or the request) caused the failure."""
        return self.kind in (FailureKind.UNAUTHORIZED, FailureKind.BLOCKED, FailureKind.RATE_LIMITED)
