"""Run-time settings: the operator-tuned subset of ``Settings`` overridden from the store.

The environment gives the defaults; the store holds overrides in one HASH (``settings:values``, field = the
environment variable's name, value = the validated value as JSON) and a version stamp in one STRING
(``settings:version``, ``<n>-<nonce>``, rewritten by every change). Each instance caches both:

- ``ensure_fresh(store)`` costs **no command** while the cache is younger than ``SETTINGS_CACHE_TTL``; once it is
  older, **one** EVALSHA that returns the version and, only if it differs from the cached one, the HASH too.
- ``note_version(v)`` lets a script that already runs on the request (the pool's lease) piggyback the version on
  its reply: an unchanged version renews the cache for free, a changed one marks it stale.

How an override reaches the components: ``Settings`` stays frozen and is never mutated. A change builds a new
``Settings`` (environment values + overrides, validated exactly like the environment) and *swaps* it into the
gateway and every component of it that holds the same object (``gateway.pool.settings``, ``gateway.chat.settings``
...), and rebuilds the catalog when aliases changed. So components must read run-time values at use time
(``self.settings.x``), never copy them into attributes of their own at construction; a request that captured
``gw.settings`` keeps one consistent snapshot to its end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import typing
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt

from core.catalog import Catalog
from core.errors import InvalidRequest
from core.settings import ENV_NAMES, Settings, SettingsError
from core.store import Store
from core.store.base import Script

log = logging.getLogger("grok2api")

# Field names of the settings an operator may change at run time. Everything else (secrets, store, bucket,
# upstream URLs, timeouts of the deployment) stays environment-only.
RUNTIME_FIELDS: tuple[str, ...] = (
    "thinking_output",
    "filter_tags",
    "sources_footer",
    "model_aliases",
    "claude_model",
    "rate_limit_cooldown",
    "exhausted_cooldown",
    "failure_backoff_base",
    "failure_backoff_max",
    "invalid_after_unauthorized",
    "invalid_after_blocked",
    "account_concurrency",
    "heartbeat_interval",
    "image_format",
    "media_retention_days",
    "log_retention_days",
    "log_max_entries",
    "log_content_chars",
    "public_playground",
    "public_key",
    "public_rpm",
)
BY_NAME: dict[str, str] = {ENV_NAMES[f][0]: f for f in RUNTIME_FIELDS}  # env name -> field
VERSION_KEY = ("settings", "version")  # store.key(*VERSION_KEY): the STRING a lease script may GET and return
VALUES_KEY = ("settings", "values")  # store.key(*VALUES_KEY): the HASH of overrides

_NEVER = "\x00never-loaded"  # a version no store can hold: the first check always reads the HASH

# One command: the version, and the overrides only when the caller's cached version is not the current one.
_CHECK = Script("settings_check", """
local v = redis.call('GET', KEYS[1]) or ''
if v == ARGV[1] then return {v} end
return {v, redis.call('HGETALL', KEYS[2])}
""")

# One command: apply a change (ARGV name, json pairs; '' = remove the override) and stamp a new version.
_WRITE = Script("settings_write", """
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[2], ARGV[i])
  else redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
end
local old = redis.call('GET', KEYS[1]) or '0'
local v = ((tonumber(string.match(old, '^(%d+)')) or 0) + 1) .. '-' .. ARGV[1]
redis.call('SET', KEYS[1], v)
return {v, redis.call('HGETALL', KEYS[2])}
""")


def version_key(store: Store) -> str:
    return store.key(*VERSION_KEY)


def values_key(store: Store) -> str:
    return store.key(*VALUES_KEY)


@dataclass(eq=False)
class _Live:
    """One instance's view of one store's overrides."""

    base: Settings  # the environment's settings: the defaults
    apply: Callable[[Settings], None]
    current: Settings
    max_age: float
    version: str = _NEVER
    overrides: dict[str, str] = field(default_factory=dict)  # env name -> stored JSON text
    checked_at: float = float("-inf")  # monotonic
    inflight: asyncio.Task[None] | None = None

    def fresh(self, max_age: float) -> bool:
        return time.monotonic() - self.checked_at < max_age


_live: weakref.WeakKeyDictionary[Store, _Live] = weakref.WeakKeyDictionary()


# -- binding ---------------------------------------------------------------------------------------------------


def bind(store: Store, settings: Settings, apply: Callable[[Settings], None]) -> None:
    """Make ``settings`` (the environment's) the defaults for ``store``'s overrides; ``apply(new)`` is called
    with each new effective ``Settings``. Binding a store twice keeps the first binding."""
    if store not in _live:
        _live[store] = _Live(settings, apply, settings, settings.settings_cache_ttl)


def attach(gateway: Any) -> None:
    """Bind a ``Gateway``: a change is swapped into it and its components (see the module docstring)."""
    if gateway.store in _live:
        return

    def swap(new: Settings) -> None:
        old = gateway.settings
        for holder in (gateway, *vars(gateway).values()):
            if getattr(holder, "settings", None) is old:
                holder.settings = new
        if (new.model_aliases, new.claude_model) != (old.model_aliases, old.claude_model):
            gateway.catalog = Catalog.load(new.model_aliases, claude_model=new.claude_model)

    bind(gateway.store, gateway.settings, swap)


def current(store: Store) -> Settings | None:
    """The effective settings last applied for ``store`` (no I/O); ``None`` if it was never bound."""
    live = _live.get(store)
    return live.current if live else None


def cached_version(store: Store) -> str | None:
    """The version this instance last saw (``None`` before the first check), e.g. for a script's ARGV."""
    live = _live.get(store)
    return None if live is None or live.version == _NEVER else live.version


# -- freshness ------------------------------------------------------------------------------------------------


async def ensure_fresh(store: Store, max_age: float | None = None) -> Settings | None:
    """Bring the bound settings up to date if the cache is older than ``max_age`` (default SETTINGS_CACHE_TTL).

    Fresh cache: 0 store commands. Stale: 1 (EVALSHA; the HASH rides along only when the version changed).
    A store failure keeps the last known settings and is retried after ``max_age``: settings never fail a request.
    Concurrent callers share one check. Returns the effective settings (``None`` if ``store`` was never bound).
    """
    live = _live.get(store)
    if live is None:
        return None
    if live.fresh(live.max_age if max_age is None else max_age):
        return live.current
    task = live.inflight
    if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
        task = live.inflight = asyncio.ensure_future(_check(store, live))
    await asyncio.shield(task)
    return live.current


def note_version(v: str, store: Store | None = None) -> bool:
    """Record a version stamp read by some other command (``GET settings:version`` inside a lease script).

    Returns True when it differs from the cached one: the cache is then stale and the next ``ensure_fresh``
    reads the overrides. An equal version renews the cache at no cost. ``store=None`` = every bound store
    (a process has one gateway)."""
    changed = False
    for bound, live in list(_live.items()):
        if store is not None and bound is not store:
            continue
        if (v or "") == live.version:
            live.checked_at = time.monotonic()
        else:
            live.checked_at = float("-inf")
            changed = True
    return changed


async def _check(store: Store, live: _Live) -> None:
    try:
        reply = await store.run(_CHECK, [version_key(store), values_key(store)], [live.version])
    except Exception as exc:  # StoreUnavailable or a bad reply: keep what we have, try again after max_age
        log.warning("run-time settings: version check failed, keeping the cached settings: %s", exc)
        live.checked_at = time.monotonic()
        return
    live.checked_at = time.monotonic()
    if len(reply) > 1:
        _install(live, str(reply[0]), _pairs(reply[1]))


def _install(live: _Live, version: str, overrides: dict[str, str]) -> None:
    live.version = version
    new = _effective(live.base, overrides)  # only on a version change: cheap enough
    live.overrides = overrides
    if new != live.current:
        live.current = new
        live.apply(new)


def _pairs(flat: Any) -> dict[str, str]:
    items = list(flat or [])
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _effective(base: Settings, overrides: Mapping[str, str]) -> Settings:
    """``base`` with every stored override that is still valid (one that a newer version of the gateway
    rejects is skipped with a warning rather than breaking every request)."""
    values: dict[str, Any] = {}
    for name, text in overrides.items():
        field_name = BY_NAME.get(name)
        if field_name is None:
            log.warning("run-time settings: ignoring %s in the store (not a run-time setting)", name)
            continue
        try:
            values[field_name] = json.loads(text)
        except ValueError:
            log.warning("run-time settings: ignoring %s in the store (not JSON)", name)
    while True:
        try:
            return _build(base, values)
        except SettingsError as exc:
            bad = {line.split(":", 1)[0] for line in exc.problems}
            dropped = [f for f in values if ENV_NAMES[f][0] in bad] or list(values)
            log.warning("run-time settings: ignoring invalid stored %s: %s", dropped, "; ".join(exc.problems))
            for f in dropped:
                values.pop(f)


def _build(base: Settings, values: Mapping[str, Any]) -> Settings:
    """Validate exactly as the environment is validated (``Settings.from_env`` messages), plus the catalog's
    own start-up check of MODEL_ALIASES targets."""
    everything = {name: getattr(base, name) for name in Settings.model_fields}
    settings = Settings.from_env(environ={}, **{**everything, **values})
    if "model_aliases" in values or "claude_model" in values:
        try:
            Catalog.load(settings.model_aliases, claude_model=settings.claude_model)
        except ValueError as exc:
            raise SettingsError([str(exc)]) from None
    return settings


# -- the admin view and writes ----------------------------------------------------------------------------------


def describe(store: Store) -> dict[str, Any]:
    """``GET /admin/settings``: every run-time setting, its effective and environment value and where it comes
    from. No I/O (call ``ensure_fresh`` first)."""
    live = _live[store]
    effective = live.current.model_dump(mode="json")
    env = live.base.model_dump(mode="json")
    data = []
    for name, field_name in BY_NAME.items():
        source = "store" if name in live.overrides else "env" if field_name in live.base.model_fields_set else "default"
        data.append({"name": name, "value": effective[field_name], "env_value": env[field_name], "source": source,
                     **field_meta(field_name)})
    return {"version": cached_version(store), "data": data}


def validate(store: Store, values: Mapping[str, Any]) -> dict[str, str]:
    """Check a change (env name -> value, ``None`` = back to the environment) against the current overrides;
    returns the HASH edits (name -> JSON text, '' = remove). A bad one raises ``InvalidRequest`` naming it
    (``param``) with the environment variable's own message."""
    live = _live[store]
    for name in values:
        if name not in BY_NAME:
            raise InvalidRequest(
                f"{name} is not a run-time setting (run-time settings: {', '.join(BY_NAME)}); "
                "others are set in the environment",
                param=name, code="unknown_setting",
            )
    merged = {BY_NAME[n]: json.loads(t) for n, t in live.overrides.items() if n in BY_NAME}
    for name, value in values.items():
        merged.pop(BY_NAME[name], None)
        if value is not None:
            merged[BY_NAME[name]] = value
    try:
        new = _build(live.base, merged)
    except SettingsError as exc:
        named = [line for line in exc.problems if line.split(":", 1)[0] in values] or exc.problems
        raise InvalidRequest(named[0], param=named[0].split(":", 1)[0], code="invalid_setting") from None
    dumped = new.model_dump(mode="json")
    return {name: "" if value is None else json.dumps(dumped[BY_NAME[name]]) for name, value in values.items()}


async def write(store: Store, values: Mapping[str, Any]) -> dict[str, Any]:
    """``PUT /admin/settings``: validate, store atomically with a new version (1 command), apply here at once
    (other instances within SETTINGS_CACHE_TTL), and describe the result."""
    edits = validate(store, values)
    if edits:
        args = [secrets.token_hex(4)]
        for name, text in edits.items():
            args += [name, text]
        reply = await store.run(_WRITE, [version_key(store), values_key(store)], args)
        live = _live[store]
        live.checked_at = time.monotonic()
        _install(live, str(reply[0]), _pairs(reply[1]))
    return describe(store)


def field_meta(field_name: str) -> dict[str, Any]:
    """Type, description and bounds of a setting, for the console's form."""
    info = Settings.model_fields[field_name]
    annotation = info.annotation
    meta: dict[str, Any] = {"description": info.description or ""}
    origin = typing.get_origin(annotation)
    if origin is Literal:
        meta.update(type="string", choices=list(typing.get_args(annotation)))
    elif annotation is bool:
        meta["type"] = "boolean"
    elif annotation is int:
        meta["type"] = "integer"
    elif annotation is float:
        meta["type"] = "number"
    elif origin is tuple:
        meta["type"] = "string_list"
    elif origin is dict:
        meta["type"] = "mapping"
    else:
        meta["type"] = "string"
    for rule in info.metadata:
        if isinstance(rule, Ge | Gt):
            meta["minimum"] = rule.ge if isinstance(rule, Ge) else rule.gt
            if isinstance(rule, Gt):
                meta["exclusive_minimum"] = True
        elif isinstance(rule, Le | Lt):
            meta["maximum"] = rule.le if isinstance(rule, Le) else rule.lt
    return meta
