"""Browser tests: Debian's Chromium driven by Playwright for Python, against a real gateway process (uvicorn on a
loopback port, ``python -m adapters.cli serve``) in front of the grok.com simulator (its own process).

Chromium or Playwright missing: the tests skip, except under ``G2A_NO_SKIPS=1`` (CI), where that is a failure.
Every page a test opens records console errors, failed requests and HTTP error answers; the test fails on any
it did not declare with ``page_errors.allow(...)``. Screenshots go to ``tests/browser/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.client import SimControl
from tests.multi.procs import Proc, Processes, simulator_process

try:  # the fixtures below skip (or fail under G2A_NO_SKIPS=1) when it is missing; this keeps collection working
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover
    expect = None

ADMIN_PASSWORD = "browser-admin-secret"
API_KEY = "sk-browser-env-key"
CHROMIUM = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
AXE = Path(os.environ.get("AXE_CORE_JS") or Path.home() / ".cache/grok2api/npm-axe/node_modules/axe-core/axe.min.js")
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def _strict() -> bool:
    return os.environ.get("G2A_NO_SKIPS", "").strip().lower() in ("1", "true", "yes")


def missing_dependency(what: str) -> None:
    """Skip for a missing browser dependency, or fail under G2A_NO_SKIPS=1."""
    if _strict():
        pytest.fail(f"{what} (G2A_NO_SKIPS=1: .ci/run installs it)", pytrace=False)
    pytest.skip(what)


# Package scope, not session: Playwright's sync API keeps its event loop marked as running on the main thread
# until it is stopped, and every later test that calls asyncio.run() would fail ("cannot be called from a
# running event loop"). Stopped after the last browser test, the rest of the suite is unaffected.
@pytest.fixture(scope="package")
def playwright_api() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_dependency("playwright is not installed (pip install -e '.[test]')")
    if not os.path.exists(CHROMIUM):
        missing_dependency(f"chromium not found at {CHROMIUM} (apt-get install -y chromium fonts-wqy-microhei)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright_api: Any) -> Iterator[Any]:
    browser = playwright_api.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
    yield browser
    browser.close()


@dataclass
class Gateway:
    url: str
    proc: Proc
    sim: SimControl
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, self.url + path, headers={"Authorization": f"Bearer {ADMIN_PASSWORD}"},
                                 **kwargs)

    def add_sim_accounts(self, count: int, tier: str = "super") -> list[str]:
        tokens = [f"browser-{tier}-{uuid.uuid4().hex}" for _ in range(count)]
        for token in tokens:
            self.sim.add_account(token, tier=tier)
        return tokens

    def import_accounts(self, count: int = 1, tier: str = "super") -> list[str]:
        tokens = self.add_sim_accounts(count, tier)
        response = self.admin("POST", "/admin/tokens", json={"tokens": tokens})
        assert response.status_code == 200, response.text
        return tokens

    def login_cookie(self) -> tuple[str, str]:
        """(cookie value, csrf) of a fresh console session."""
        response = self.http.post(self.url + "/admin/login", json={"password": ADMIN_PASSWORD})
        assert response.status_code == 200, response.text
        return response.cookies["g2a_session"], response.json()["csrf"]


@pytest.fixture(scope="package")
def procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    with Processes(tmp_path_factory.mktemp("browser-procs")) as processes:
        yield processes


@pytest.fixture(scope="package")
def gateway(procs: Processes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One simulator and one gateway for the whole browser run (tests keep to their own accounts and keys)."""
    with simulator_process(procs) as (sim_proc, control):
        data = tmp_path_factory.mktemp("browser-data")
        env = {
            "API_KEYS": API_KEY,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "GROK_BASE_URL": sim_proc.url,
            "GROK_ASSETS_URL": sim_proc.url + "/__assets",
            "GROK_WS_URL": f"ws://127.0.0.1:{sim_proc.port}/ws/mgw/",
            "GROK_IMAGINE_WS_URL": f"ws://127.0.0.1:{sim_proc.port}/ws/imagine/listen",
            "DATA_DIR": str(data),
            "STORE_PREFIX": f"browser-{uuid.uuid4().hex[:8]}:",
            "ALLOW_PRIVATE_URLS": "true",
            "LOGIN_MAX_FAILURES": "50",
        }
        proc = procs.spawn("gateway", ["-m", "adapters.cli", "serve", "--host", "127.0.0.1", "--port", "{port}"],
                           env=env, ready="/health", timeout=60)
        gw = Gateway(proc.url, proc, control)
        yield gw
        gw.http.close()


class PageErrors:
    """Console errors, failed requests and HTTP error answers seen by one page."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[tuple[re.Pattern[str], int | None]] = []

    def allow(self, url_pattern: str, status: int | None = None) -> None:
        self.allowed.append((re.compile(url_pattern), status))

    def _allowed(self, url: str, status: int | None) -> bool:
        return any(p.search(url) and (s is None or s == status) for p, s in self.allowed)

    def attach(self, page: Any) -> None:
        def on_console(msg: Any) -> None:
            if msg.type == "error":
                text = msg.text
                location = (msg.location or {}).get("url", "")
                # Chromium logs every HTTP error answer as a console error too; those are judged by on_response.
                if "Failed to load resource: the server responded with a status of" in text:
                    return
                if not self._allowed(location + " " + text, None):
                    self.errors.append(f"console error: {text} ({location})")

        def on_failed(request: Any) -> None:
            failure = request.failure or ""
            if "ERR_ABORTED" in failure:
                return  # cancelled by the page itself (a reload, a closed tab, an AbortController), not failed
            if not self._allowed(request.url, None):
                self.errors.append(f"request failed: {request.method} {request.url} {failure}")

        def on_response(response: Any) -> None:
            if response.status >= 400 and not self._allowed(response.url, response.status):
                self.errors.append(f"HTTP {response.status}: {response.request.method} {response.url}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("requestfailed", on_failed)
        page.on("response", on_response)

    def check(self) -> None:
        assert not self.errors, "\n".join(self.errors)


@dataclass
class Console:
    """A browser page on the console, with its error recorder."""

    page: Any
    errors: PageErrors
    gateway: Gateway
    lang: str
    device: str

    def open(self, hash_: str = "") -> None:
        self.page.goto(self.gateway.url + "/admin" + (f"#/{hash_}" if hash_ else ""))

    def login(self) -> None:
        self.open()
        self.page.get_by_label(T[self.lang]["password"]).fill(ADMIN_PASSWORD)
        self.page.get_by_role("button", name=T[self.lang]["log_in"]).click()
        self.page.locator("nav#nav").wait_for(state="attached")

    def go(self, name: str) -> None:
        self.page.evaluate("(h) => { location.hash = h; }", f"#/{name}")
        self.page.locator("main h1").first.wait_for()

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}-{self.device}-{self.lang}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def axe(self, context: str = "") -> list[dict[str, Any]]:
        """axe-core in the page: the serious and critical violations (WCAG 2.x A/AA rules)."""
        if not AXE.exists():
            missing_dependency(f"axe-core not found at {AXE} (npm install axe-core into ~/.cache/grok2api/npm-axe)")
        if not self.page.evaluate("() => !!window.axe"):
            self.page.evaluate(AXE.read_text())  # evaluated over CDP: the console's CSP does not apply to it
        result = self.page.evaluate("""async () => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
            return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
              .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
        }""")
        return result


# What the tests click, in each language (the console's own strings).
def plays(video: Any, *, seconds: float = 0.3) -> tuple[int, int]:
    """Play a ``<video>`` locator muted until ``seconds`` of it have played; its decoded frame size. Fails when
    the browser cannot decode the file (the simulator's clips are real H.264, like grok.com's)."""
    size = video.evaluate("""async (v, seconds) => {
        v.muted = true;
        await v.play();
        const start = performance.now();
        while (v.currentTime < seconds && !v.error && performance.now() - start < 10000) {
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
        v.pause();
        return v.error ? [-1, v.error.code] : (v.currentTime >= seconds ? [v.videoWidth, v.videoHeight] : [0, 0]);
    }""", seconds)
    assert size[0] > 0 and size[1] > 0, f"the video did not play: {size}"
    return size[0], size[1]


T = {
    "en": {"password": "Admin password", "log_in": "Log in", "accounts": "Accounts", "import": "Import",
           "send": "Send", "generate": "Generate", "create_key": "Create key", "create": "Create", "save": "Save",
           "playground": "Playground", "message": "Message", "prompt": "Prompt", "token_file": "Or a file"},
    "zh": {"password": "管理员密码", "log_in": "登录", "accounts": "账号", "import": "导入", "send": "发送",
           "generate": "生成", "create_key": "创建密钥", "create": "创建", "save": "保存", "playground": "试用",
           "message": "消息", "prompt": "提示词", "token_file": "或选择文件"},
}


@pytest.fixture
def console(browser: Any, gateway: Gateway, request: pytest.FixtureRequest) -> Iterator[Callable[..., Console]]:
    """``console(lang="en", device="desktop")`` → a fresh browser context (own cookies and localStorage)."""
    made: list[tuple[Any, PageErrors]] = []

    def make(lang: str = "en", device: str = "desktop", **context_args: Any) -> Console:
        viewport = PHONE if device == "phone" else DESKTOP
        context = browser.new_context(
            viewport=viewport, locale="zh-CN" if lang == "zh" else "en-US", is_mobile=device == "phone",
            has_touch=device == "phone", device_scale_factor=2 if device == "phone" else 1, **context_args,
        )
        context.set_default_timeout(20000)
        page = context.new_page()
        errors = PageErrors()
        errors.attach(page)
        made.append((context, errors))
        return Console(page, errors, gateway, lang, device)

    yield make
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    for context, errors in made:
        context.close()
        if not failed:
            errors.check()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
