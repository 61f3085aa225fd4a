"""A thin synchronous client for the ``/__sim`` control API, for tests that run the simulator in another process.

    control = SimControl("http://127.0.0.1:8780")
    control.reset()
    control.add_account("tok", tier="basic", concurrency_limit=2)
    ...
    assert control.ledger()["violation_count"] == 0
"""

from __future__ import annotations

from typing import Any

import httpx

from simulator.replies import ALL


class SimControl:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/__sim", timeout=timeout)

    def _call(self, method: str, url: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, url, json=body, params=params)
        response.raise_for_status()
        return response.json()

    def health(self) -> bool:
        return bool(self._call("GET", "/health")["ok"])

    def reset(self) -> None:
        self._call("POST", "/reset")

    def configure(self, **values: Any) -> dict[str, Any]:
        """Partial config update, e.g. ``configure(preset="fast", cloudflare=True)``."""
        return self._call("PATCH", "/config", values)

    def add_account(self, token: str, **options: Any) -> dict[str, Any]:
        return self._call("POST", "/accounts", {"token": token, **options})

    def account(self, token: str) -> dict[str, Any]:
        return self._call("GET", f"/accounts/{token}")

    def remove_account(self, token: str) -> None:
        self._call("DELETE", f"/accounts/{token}")

    def block(self, token: str, blocked: bool = True) -> None:
        self._call("POST", f"/accounts/{token}/block", {"blocked": blocked})

    def set_quota(self, token: str, mode: str, *, total: int | None = None, remaining: int | None = None,
                  window: int | None = None) -> dict[str, Any]:
        return self._call("POST", f"/accounts/{token}/quota",
                          {"mode": mode, "total": total, "remaining": remaining, "window": window})

    def set_concurrency_limit(self, token: str, limit: int | None) -> None:
        self._call("POST", f"/accounts/{token}/concurrency", {"limit": limit})

    def set_fault(self, token: str, status: int | None, *, times: int | None = None,
                  retry_after: float | None = None, message: str | None = None) -> None:
        """Fail the account's next ``times`` chat requests (every one when None) with ``status``; None clears."""
        self._call("POST", f"/accounts/{token}/fault",
                   {"status": status, "times": times, "retry_after": retry_after, "message": message})

    def register_clearance(self, value: str, user_agent: str | None = None) -> None:
        self._call("POST", "/clearances", {"value": value, "user_agent": user_agent})

    def add_rule(self, pattern: str, scenario: str | None = None, **params: Any) -> list[dict[str, Any]]:
        return self._call("POST", "/rules", {"pattern": pattern, "scenario": scenario, "params": params})

    def clear_rules(self) -> None:
        self._call("DELETE", "/rules")

    def script_replies(self, token: str | None, replies: list[str | dict[str, Any]], *,
                       replace: bool = False) -> dict[str, Any]:
        """Queue the next answers of ``token``'s chat turns (``None``: any account). Returns all queues."""
        return self._call("POST", "/replies", {"token": token, "replies": replies, "replace": replace})

    def clear_replies(self, token: str | None = ALL) -> dict[str, Any]:
        """Clear every queue (default), the global one (``None``) or one account's."""
        params = {} if token == ALL else {"global": "1"} if token is None else {"token": token}
        return self._call("DELETE", "/replies", params=params)

    def scripted_replies(self) -> dict[str, Any]:
        return self._call("GET", "/replies")

    def ledger(self, token: str | None = None) -> dict[str, Any]:
        return self._call("GET", "/ledger", params={"token": token} if token else None)

    def reset_ledger(self) -> None:
        self._call("DELETE", "/ledger")

    def requests(self, *, path: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("path", path), ("limit", limit)) if v is not None}
        return self._call("GET", "/requests", params=params)

    def advance_time(self, seconds: float) -> None:
        self._call("POST", "/clock", {"advance": seconds})

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        return self._call("GET", f"/conversations/{conversation_id}")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
