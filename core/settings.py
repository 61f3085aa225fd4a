"""Start-up settings, read from environment variables once per process.

Settings that operators change at run time (model aliases, thinking output, ...) may later be overridden from the
store; this module only knows the environment. ``Settings.from_env`` validates everything and reports every
problem at once, one line per variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/136.0.0.0 Safari/537.36"
)

ENV_NAMES: dict[str, tuple[str, ...]] = {
    # field name -> environment variables, first match wins
    "app_env": ("APP_ENV",),
    "api_keys": ("API_KEYS",),
    "admin_password": ("ADMIN_PASSWORD",),
    "cron_secret": ("CRON_SECRET",),
    "encryption_key": ("ENCRYPTION_KEY",),
    "public_base_url": ("PUBLIC_BASE_URL",),
    "data_dir": ("DATA_DIR",),
    "redis_url": ("REDIS_URL",),
    "upstash_url": ("UPSTASH_REDIS_REST_URL", "KV_REST_API_URL"),
    "upstash_token": ("UPSTASH_REDIS_REST_TOKEN", "KV_REST_API_TOKEN"),
    "store_prefix": ("STORE_PREFIX",),
    "store_timeout": ("STORE_TIMEOUT",),
    "grok_base_url": ("GROK_BASE_URL",),
    "grok_assets_url": ("GROK_ASSETS_URL",),
    "grok_ws_url": ("GROK_WS_URL",),
    "chat_transport": ("CHAT_TRANSPORT",),
    "impersonate": ("GROK_IMPERSONATE",),
    "user_agent": ("GROK_USER_AGENT",),
    "cf_clearance": ("GROK_CF_CLEARANCE",),
    "cf_cookies": ("GROK_CF_COOKIES",),
    "statsig_id": ("GROK_STATSIG_ID",),
    "proxy_url": ("GROK_PROXY_URL",),
    "connect_timeout": ("UPSTREAM_CONNECT_TIMEOUT",),
    "first_byte_timeout": ("UPSTREAM_FIRST_BYTE_TIMEOUT",),
    "stream_idle_timeout": ("UPSTREAM_IDLE_TIMEOUT",),
    "request_timeout": ("UPSTREAM_REQUEST_TIMEOUT",),
    "heartbeat_interval": ("SSE_HEARTBEAT_INTERVAL",),
    "thinking_output": ("THINKING_OUTPUT",),
    "filter_tags": ("FILTER_TAGS",),
    "sources_footer": ("SOURCES_FOOTER",),
    "model_aliases": ("MODEL_ALIASES",),
    "claude_model": ("CLAUDE_MODEL",),
    "response_ttl": ("RESPONSE_TTL",),
    "media_backend": ("MEDIA_BACKEND",),
    "s3_bucket": ("S3_BUCKET",),
    "s3_endpoint_url": ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"),
    "s3_region": ("S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    "s3_prefix": ("S3_PREFIX",),
    "s3_access_key_id": ("S3_ACCESS_KEY_ID",),
    "s3_secret_access_key": ("S3_SECRET_ACCESS_KEY",),
    "media_public_base_url": ("MEDIA_PUBLIC_BASE_URL",),
    "media_presign_ttl": ("MEDIA_PRESIGN_TTL",),
    "media_max_bytes": ("MEDIA_MAX_BYTES",),
    "media_total_bytes": ("MEDIA_TOTAL_BYTES",),
    "media_retention_days": ("MEDIA_RETENTION_DAYS",),
    "video_drive": ("VIDEO_DRIVE",),
    "video_dispatch_function": ("VIDEO_DISPATCH_FUNCTION",),
    "video_timeout": ("VIDEO_TIMEOUT",),
    "video_job_ttl": ("VIDEO_JOB_TTL",),
    "video_format": ("VIDEO_FORMAT",),
    "image_format": ("IMAGE_FORMAT",),
    "image_transport": ("IMAGE_TRANSPORT",),
    "grok_imagine_ws_url": ("GROK_IMAGINE_WS_URL",),
    "allow_private_urls": ("ALLOW_PRIVATE_URLS",),
    "max_image_bytes": ("MAX_IMAGE_BYTES",),
    "max_request_bytes": ("MAX_REQUEST_BYTES",),
    "max_images_per_request": ("MAX_IMAGES_PER_REQUEST",),
    "image_fetch_concurrency": ("IMAGE_FETCH_CONCURRENCY",),
    "image_fetch_deadline": ("IMAGE_FETCH_DEADLINE",),
    "max_attempts": ("MAX_ATTEMPTS",),
    "account_concurrency": ("ACCOUNT_CONCURRENCY",),
    "lease_ttl": ("LEASE_TTL",),
    "lease_wait": ("LEASE_WAIT",),
    "instance_id": ("INSTANCE_ID",),
    "quota_stale_after": ("QUOTA_STALE_AFTER",),
    # --- token pool failure rules (core/pool) ---
    "rate_limit_cooldown": ("RATE_LIMIT_COOLDOWN",),
    "exhausted_cooldown": ("EXHAUSTED_COOLDOWN",),
    "failure_backoff_base": ("FAILURE_BACKOFF_BASE",),
    "failure_backoff_max": ("FAILURE_BACKOFF_MAX",),
    "invalid_after_unauthorized": ("INVALID_AFTER_UNAUTHORIZED",),
    "invalid_after_blocked": ("INVALID_AFTER_BLOCKED",),
    "sticky_ttl": ("STICKY_TTL",),
    "usage_retention_days": ("USAGE_RETENTION_DAYS",),
    # --- end token pool ---
    # --- run-time settings and admin sessions (core/runtime_settings.py, api/_session.py) ---
    "settings_cache_ttl": ("SETTINGS_CACHE_TTL",),
    "log_retention_days": ("LOG_RETENTION_DAYS",),
    "log_max_entries": ("LOG_MAX_ENTRIES",),
    "log_content_chars": ("LOG_CONTENT_CHARS",),
    "public_playground": ("PUBLIC_PLAYGROUND",),
    "public_key": ("PUBLIC_KEY",),
    "public_rpm": ("PUBLIC_RPM",),
    "admin_session_ttl": ("ADMIN_SESSION_TTL",),
    "login_max_failures": ("LOGIN_MAX_FAILURES",),
    "login_failure_window": ("LOGIN_FAILURE_WINDOW",),
    "trust_proxy_headers": ("TRUST_PROXY_HEADERS",),
    # --- end run-time settings and admin sessions ---
}


class Settings(BaseModel):
    """Everything configurable at start-up. Field docs double as the README's configuration reference."""

    model_config = {"frozen": True}

    app_env: Literal["development", "production"] = Field(
        "development", description="`production` refuses to start without ADMIN_PASSWORD, and never opens the API to "
        "clients without a key (but for the public playground, when it is turned on)."
    )
    api_keys: tuple[str, ...] = Field(
        (), description="Comma-separated client API keys (Bearer or x-api-key), beside the store-managed ones. "
        "Empty: production accepts store-managed keys only; development accepts any client."
    )
    admin_password: str | None = Field(None, description="Admin API secret (Bearer). No default in production.")
    cron_secret: str | None = Field(None, description="Bearer secret for cron endpoints (Vercel Cron sends it).")
    encryption_key: str | None = Field(None, description="Encrypts session tokens at rest when set.")
    public_base_url: str | None = Field(None, description="Public URL of this gateway, used in media links.")

    data_dir: Path = Field(Path("data"), description="Embedded Redis and local media live here.")
    redis_url: str | None = Field(None, description="Any Redis (redis:// or rediss://). Default: embedded Redis.")
    upstash_url: str | None = Field(None, description="Upstash REST URL (or KV_REST_API_URL on Vercel).")
    upstash_token: str | None = Field(None, description="Upstash REST token (or KV_REST_API_TOKEN).")
    store_prefix: str = Field("g2a:", description="Prefix for every key this gateway writes.")
    store_timeout: float = Field(2.0, gt=0, description="Seconds before a store call is abandoned (→ 503).")

    grok_base_url: str = Field("https://grok.com", description="Grok Web base URL (point at the simulator).")
    grok_assets_url: str = Field("https://assets.grok.com", description="Assets host base URL.")
    grok_ws_url: str = Field("wss://grok.com/ws/mgw/", description="mgw chat WebSocket URL.")
    chat_transport: Literal["rest", "mgw"] = Field("rest", description="`rest` (NDJSON) or `mgw` (WebSocket).")
    impersonate: str = Field("chrome136", description="curl_cffi browser fingerprint to impersonate.")
    user_agent: str = Field(DEFAULT_USER_AGENT, description="Must match the browser that got cf_clearance.")
    cf_clearance: str | None = Field(None, description="cf_clearance cookie copied from your own browser.")
    cf_cookies: str | None = Field(None, description="Other Cloudflare cookies (`a=b; c=d`) from your browser.")
    statsig_id: str | None = Field(None, description="x-statsig-id copied from your browser; never generated.")
    proxy_url: str | None = Field(None, description="Egress proxy for upstream calls.")

    connect_timeout: float = Field(10.0, gt=0, description="Upstream connect timeout, seconds.")
    first_byte_timeout: float = Field(30.0, gt=0, description="Seconds to wait for the first upstream byte.")
    stream_idle_timeout: float = Field(60.0, gt=0, description="Seconds of upstream silence before giving up.")
    request_timeout: float = Field(300.0, gt=0, description="Hard cap for one upstream call, seconds.")
    heartbeat_interval: float = Field(15.0, gt=0, description="SSE comment heartbeat while upstream is silent.")

    thinking_output: Literal["separate", "inline", "hidden"] = Field(
        "separate", description="`separate` = reasoning_content, `inline` = <think> in content, `hidden`."
    )
    filter_tags: tuple[str, ...] = Field(
        ("xaiartifact", "xai:tool_usage_card", "grok:render"), description="Grok markup tags removed from text."
    )
    sources_footer: bool = Field(True, description="Append web search results as a markdown Sources list.")
    model_aliases: dict[str, str] = Field(
        default_factory=dict, description="Extra model aliases: JSON object or `gpt-4o=grok-4.5,...`."
    )
    claude_model: str = Field(
        "grok-4.5", description="Grok model a `claude-*` model name maps to (unless MODEL_ALIASES names it)."
    )
    response_ttl: float = Field(
        86400.0, gt=0, description="Seconds a stored Responses API answer (`store: true`) can be chained or read."
    )
    media_backend: Literal["auto", "local", "s3"] = Field(
        "auto", description="Where generated media is kept: `local` (DATA_DIR/media), `s3`; `auto` = s3 when S3_BUCKET is set."
    )
    s3_bucket: str | None = Field(None, description="S3-compatible bucket for media (AWS S3, R2, MinIO, B2, GCS).")
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint for non-AWS providers (credentials: S3_ACCESS_KEY_ID or the AWS_* variables)."
    )
    s3_region: str | None = Field(None, description="S3 region.")
    s3_prefix: str = Field("media/", description="Key prefix for media objects in the bucket.")
    s3_access_key_id: str | None = Field(
        None, description="Credentials for the bucket when they are not the AWS_* ones (on Lambda those are the "
        "function's role: set these for R2, B2, MinIO)."
    )
    s3_secret_access_key: str | None = Field(None, description="Secret of S3_ACCESS_KEY_ID.")
    media_public_base_url: str | None = Field(
        None, description="Public URL of the bucket or its CDN: links point there instead of presigned URLs."
    )
    media_presign_ttl: float = Field(3600.0, gt=0, description="Lifetime of presigned media links, seconds.")
    media_max_bytes: int = Field(200 * 1024 * 1024, gt=0, description="Largest single media object stored.")
    media_total_bytes: int = Field(
        5 * 1024 * 1024 * 1024, gt=0, description="Media kept in all; the cron tick deletes the oldest beyond it."
    )
    media_retention_days: float = Field(7.0, gt=0, description="Days generated media is kept (cron cleanup).")
    video_drive: Literal["inline", "poll", "async"] = Field(
        "inline", description="Who runs a video job: `POST /v1/videos` itself (`inline`), the first poll (`poll`), "
        "or an asynchronous invocation of VIDEO_DISPATCH_FUNCTION (`async`, AWS Lambda behind API Gateway)."
    )
    video_dispatch_function: str | None = Field(
        None, description="Lambda function (name or ARN) invoked with `InvocationType=Event` to run a "
        "`VIDEO_DRIVE=async` job: a plain handler function whose timeout exceeds VIDEO_TIMEOUT (serverless.yml's "
        "`videos`)."
    )
    video_timeout: float = Field(
        240.0, gt=0, le=900, description="Seconds one video job may run (generation + download); then it failed."
    )
    video_job_ttl: float = Field(86400.0, gt=0, description="Seconds a video job can be polled, listed or downloaded.")
    video_format: Literal["markdown", "html", "url"] = Field(
        "markdown", description="How a chat completion with a video model links the video: markdown links "
        "(video + poster), an HTML <video> tag with the poster, or the bare URL."
    )
    image_format: Literal["url", "b64_json"] = Field(
        "url", description="How images inside chat answers are given: links to the media store, or data URLs."
    )
    image_transport: Literal["ws", "chat"] = Field(
        "ws", description="Image generation over the Imagine WebSocket (`ws`) or the chat path (`chat`)."
    )
    grok_imagine_ws_url: str = Field(
        "wss://grok.com/ws/imagine/listen", description="Imagine WebSocket URL (point at the simulator)."
    )
    allow_private_urls: bool = Field(False, description="Let image URLs reach private/loopback hosts (tests only).")
    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest image fetched or accepted.")
    max_request_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Largest request body accepted.")
    max_images_per_request: int = Field(
        16, ge=0, le=64, description="Images (URLs or data URIs) one chat request may attach; more is a 400."
    )
    image_fetch_concurrency: int = Field(4, ge=1, le=32, description="Image URLs fetched at once per request.")
    image_fetch_deadline: float = Field(
        20.0, gt=0, description="One deadline, seconds, for fetching all of a request's image URLs."
    )
    max_attempts: int = Field(3, ge=1, le=10, description="Accounts tried per request before giving up.")
    account_concurrency: int = Field(1, ge=1, description="In-flight requests allowed per account.")
    lease_ttl: float = Field(
        30.0, gt=0, description="Seconds a lease lives unless renewed; a long stream renews it as it runs."
    )
    lease_wait: float = Field(
        10.0, ge=0, description="Seconds a request waits for a busy account's slot before answering 429."
    )
    instance_id: str | None = Field(
        None,
        description="Stable name of this server process (unique among running ones): on restart it frees the "
        "leases its previous run left behind. Leave unset on Vercel/Lambda.",
    )
    quota_stale_after: float = Field(900.0, gt=0, description="Refresh an account's quota lazily after this.")

    # --- token pool failure rules (core/pool) ---
    rate_limit_cooldown: float = Field(
        60.0,
        gt=0,
        description="Seconds an account rests after a 429 while it still has quota (or Retry-After).",
    )
    exhausted_cooldown: float = Field(
        3600.0,
        gt=0,
        description="Seconds a mode whose quota ran out is skipped when upstream gives no reset time.",
    )
    failure_backoff_base: float = Field(
        5.0, gt=0, description="First cooldown after a 5xx/network/timeout; doubles per consecutive failure."
    )
    failure_backoff_max: float = Field(300.0, gt=0, description="Cap on that exponential backoff, seconds.")
    invalid_after_unauthorized: int = Field(
        3, ge=1, description="Consecutive 401s before an account is invalid."
    )
    invalid_after_blocked: int = Field(1, ge=1, description="Blocked-user 403s before an account is invalid.")
    sticky_ttl: float = Field(
        3600.0, gt=0, description="Seconds a conversation keeps preferring its account."
    )
    usage_retention_days: int = Field(35, ge=1, description="Days the daily usage counters are kept.")
    # --- end token pool ---

    # --- run-time settings and admin sessions (core/runtime_settings.py, api/_session.py) ---
    settings_cache_ttl: float = Field(
        5.0, gt=0, le=300, description="Seconds an instance trusts its cached run-time settings before a version check."
    )
    log_retention_days: float = Field(7.0, gt=0, le=3650, description="Days request log records are kept.")
    log_max_entries: int = Field(10000, ge=100, description="Most request log records kept (the oldest go first).")
    log_content_chars: int = Field(
        0, ge=0, le=100000, description="First N characters of prompts and answers kept in the log (0 = none)."
    )
    public_playground: bool = Field(False, description="Let the playground call the API without a client key.")
    public_key: str = Field("", description="Key the public playground must send (empty = none needed).")
    public_rpm: int = Field(10, ge=1, description="Public playground requests per minute per client address.")
    admin_session_ttl: float = Field(
        43200.0, gt=0, le=30 * 86400, description="Seconds an admin console login lasts."
    )
    login_max_failures: int = Field(10, ge=1, description="Wrong admin passwords per client address per window.")
    login_failure_window: float = Field(900.0, gt=0, description="Seconds the wrong-password count is kept.")
    trust_proxy_headers: bool = Field(
        False, description="Take the client address from X-Forwarded-For (only behind a proxy that sets it)."
    )
    # --- end run-time settings and admin sessions ---

    @field_validator("api_keys", "filter_tags", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("model_aliases", mode="before")
    @classmethod
    def _parse_aliases(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not text:
            return {}
        if text.startswith("{"):
            return json.loads(text)
        pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
        return {alias.strip(): target.strip() for alias, target in pairs}

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from the environment; raise ``SettingsError`` listing every bad variable."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field, names in ENV_NAMES.items():
            for name in names:
                if env.get(name) not in (None, ""):
                    values[field] = env[name]
                    break
        values.update(overrides)
        problems = _cross_field_problems(values)
        try:
            settings = cls(**values)
        except ValidationError as exc:
            raise SettingsError(SettingsError.from_validation(exc).problems + problems) from None
        except json.JSONDecodeError as exc:  # MODEL_ALIASES given as broken JSON
            raise SettingsError([f"MODEL_ALIASES: not valid JSON ({exc.msg})", *problems]) from None
        if problems:
            raise SettingsError(problems)
        return settings


def _cross_field_problems(values: Mapping[str, object]) -> list[str]:
    """Rules that span variables, checked on the raw values so they are reported even when another variable
    is malformed."""
    problems = []
    production = str(values.get("app_env", "")).strip() == "production"
    if production and not values.get("admin_password"):
        problems.append("ADMIN_PASSWORD: required when APP_ENV=production (there is no default).")
    if bool(values.get("upstash_url")) != bool(values.get("upstash_token")):
        problems.append("UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN must be set together.")
    if bool(values.get("s3_access_key_id")) != bool(values.get("s3_secret_access_key")):
        problems.append("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together.")
    if str(values.get("video_drive", "")).strip() == "async" and not values.get("video_dispatch_function"):
        problems.append("VIDEO_DRIVE: `async` hands each job to a Lambda function; set VIDEO_DISPATCH_FUNCTION "
                        "to one whose timeout exceeds VIDEO_TIMEOUT (serverless.yml's `videos`).")
    return problems


class SettingsError(ValueError):
    """Invalid configuration; ``problems`` holds one plain sentence per variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems

    @classmethod
    def from_validation(cls, exc: ValidationError) -> SettingsError:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            env_name = ENV_NAMES.get(field, (field.upper(),))[0]
            problems.append(f"{env_name}: {error['msg']}")
        return cls(problems)


def reference_table() -> str:
    """The README's configuration table, generated from the fields so the two cannot drift apart."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        env = " / ".join(f"`{n}`" for n in ENV_NAMES.get(name, (name.upper(),)))
        default = field.default_factory() if field.default_factory is not None else field.default
        if isinstance(default, tuple):
            default = ",".join(default)
        shown = "—" if default in (None, "", {}, ()) else f"`{default}`"
        rows.append(f"| {env} | {shown} | {field.description or ''} |")
    return "\n".join(rows)
