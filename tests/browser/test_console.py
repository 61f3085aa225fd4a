"""The web console in a real Chromium against a real gateway and the grok.com simulator.

Each test opens its own browser context (own cookie, own localStorage). Failing on console errors, failed
requests and unexpected HTTP errors is done by the ``console`` fixture (conftest.py).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import ADMIN_PASSWORD, API_KEY, Console, Gateway, T, expect, plays

LANGS = ["en", "zh"]


# ---- the shell and its assets (plain HTTP) ---------------------------------------------------------------------


def test_shell_and_assets_cache_headers(gateway: Gateway) -> None:
    shell = httpx.get(gateway.url + "/admin")
    assert shell.status_code == 200
    assert shell.headers["cache-control"] == "no-cache"
    assert "default-src 'none'" in shell.headers["content-security-policy"]
    assets = re.findall(r'"(/admin/assets/[^"]+)"', shell.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    total = 0
    for path in set(assets):
        assert re.search(r"\.[0-9a-f]{12}\.(js|css|svg)$", path), path
        response = httpx.get(gateway.url + path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        if not path.endswith(".svg"):  # precompressed (httpx asks for gzip)
            assert response.headers.get("content-encoding") == "gzip", path
        etag = response.headers["etag"]
        assert httpx.get(gateway.url + path, headers={"If-None-Match": etag}).status_code == 304
        total += len(response.content)
    assert total < 200_000, f"console assets grew to {total} bytes"
    # Nothing from another origin: no CDN, no web font.
    for path in set(assets):
        body = httpx.get(gateway.url + path).text
        assert not re.search(r"(?:src|href|import|url)\s*[=(]?\s*[\"']?https?://", body), path
    assert httpx.get(gateway.url + "/admin/assets/app.000000000000.js").status_code == 404
    assert httpx.get(gateway.url + "/admin/", follow_redirects=False).status_code == 308


def test_console_calls_need_the_session(gateway: Gateway) -> None:
    http = httpx.Client(base_url=gateway.url, timeout=30)
    for method, path in [("GET", "/admin/tokens"), ("GET", "/admin/pool"), ("POST", "/admin/tokens/refresh"),
                         ("GET", "/admin/tokens/export"), ("GET", "/admin/settings")]:
        assert http.request(method, path).status_code == 401, path
    cookie, csrf = gateway.login_cookie()
    http.cookies.set("g2a_session", cookie)
    assert http.get("/admin/tokens").status_code == 200
    no_csrf = http.post("/admin/tokens/refresh", json={})
    assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf_failed"
    ok = http.post("/admin/tokens/refresh", json={}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200
    assert http.post("/admin/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert http.get("/admin/tokens").status_code == 401  # revoked


# ---- login -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_login_shows_the_gateway_message_then_logs_in(console, lang: str) -> None:
    c: Console = console(lang=lang)
    c.errors.allow(r"/admin/login$", 401)
    c.open()
    page = c.page
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN" if lang == "zh" else "en")  # set once i18n ran
    c.shot("login")
    page.get_by_label(T[lang]["password"]).fill("wrong password")
    page.get_by_role("button", name=T[lang]["log_in"]).click()
    page.get_by_role("alert").filter(has_text="Wrong admin password.").wait_for()
    page.get_by_label(T[lang]["password"]).fill(ADMIN_PASSWORD)
    page.get_by_role("button", name=T[lang]["log_in"]).click()
    page.locator("nav#nav").wait_for()
    page.locator("main h1", has_text="仪表盘" if lang == "zh" else "Dashboard").wait_for()
    # A reload keeps the session (GET /admin/session gives the CSRF token back).
    page.reload()
    page.locator("nav#nav").wait_for()


# ---- accounts --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_import_from_file_refreshes_tiers_and_masks_tokens(console, gateway: Gateway, tmp_path: Path, lang: str) -> None:
    super_tokens = gateway.add_sim_accounts(2, "super")
    heavy_tokens = gateway.add_sim_accounts(1, "heavy")
    tokens = super_tokens + heavy_tokens
    tag = f"file-{lang}"
    token_file = tmp_path / "tokens.txt"
    token_file.write_text("\n".join(f"sso={t}" for t in tokens) + "\n")
    c: Console = console(lang=lang)
    c.login()
    c.go("accounts")
    page = c.page
    page.get_by_label(T[lang]["token_file"]).set_input_files(str(token_file))
    page.get_by_label(re.compile("Tags|标签")).first.fill(tag)
    page.get_by_role("button", name=T[lang]["import"], exact=True).click()
    page.get_by_text(re.compile(r"3 added|新增 3 个")).wait_for()
    # The refresh job of the imported accounts runs with a progress bar, then the list shows their tiers.
    page.get_by_text(re.compile(r"Refreshed 3 of 3|已刷新 3/3")).wait_for()
    page.get_by_label(re.compile("^Tag$|^标签$")).fill(tag)
    page.get_by_label(re.compile("^Tag$|^标签$")).dispatch_event("change")
    expect(page.locator("tbody tr")).to_have_count(3)
    text = page.locator("main").inner_text()
    assert text.count("super") >= 2 and "heavy" in text
    html = page.content()
    for token in tokens:
        assert token not in html  # masked everywhere
    c.shot("accounts")
    # Search and the quota filter are the gateway's (over the whole pool, not the loaded rows).
    masked = gateway.admin("GET", "/admin/tokens", params={"tag": tag}).json()["data"][0]["masked"]
    with page.expect_response(lambda r: "/admin/tokens?" in r.url and "q=" in r.url and r.status == 200):
        page.get_by_role("searchbox").fill(masked)
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_role("searchbox").fill("")
    expect(page.locator("tbody tr")).to_have_count(3)
    quota = page.get_by_label(re.compile("^Quota left$|^剩余额度$"))
    with page.expect_response(lambda r: "quota=none" in r.url and r.status == 200):
        quota.select_option("none")
    expect(page.locator("tbody td.empty")).to_have_count(1)  # none of the three is exhausted: the empty-list row
    expect(page.locator("tbody tr")).to_have_count(1)
    quota.select_option("some")
    expect(page.locator("tbody tr")).to_have_count(3)


def test_bulk_disable_enable_tag_and_detail(console, gateway: Gateway) -> None:
    tag = f"bulk-{time.time_ns()}"
    tokens = gateway.add_sim_accounts(2)
    gateway.admin("POST", "/admin/tokens", json={"tokens": tokens, "tags": [tag]})
    c: Console = console()
    c.login()
    c.go("accounts")
    page = c.page
    page.get_by_label("Tag", exact=True).fill(tag)
    page.get_by_label("Tag", exact=True).dispatch_event("change")
    expect(page.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Select all shown").check()
    expect(page.get_by_text("2 selected")).to_be_visible()
    page.get_by_role("button", name="Disable").click()
    page.get_by_text("2 disabled").wait_for()
    expect(page.locator("tbody tr", has_text="disabled")).to_have_count(2)
    page.get_by_label("Select all shown").check()
    expect(page.get_by_text("2 selected")).to_be_visible()
    page.get_by_role("button", name="Enable").click()
    page.get_by_text("2 enabled").wait_for()
    expect(page.locator("tbody tr", has_text="active")).to_have_count(2)
    page.get_by_label("Select all shown").check()
    expect(page.get_by_text("2 selected")).to_be_visible()
    page.get_by_role("button", name="Tag", exact=True).click()
    page.get_by_role("dialog").get_by_label("Tags (comma separated)").fill("extra")
    page.get_by_role("dialog").get_by_role("button", name="Save").click()
    page.locator("tbody", has_text="extra").wait_for()
    # Detail of one account: quotas per mode, save a note; test it.
    page.locator("tbody tr").first.locator("button.link").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Resets at").wait_for()
    dialog.get_by_label("Note").fill("from the browser")
    dialog.get_by_role("button", name="Test").click()
    dialog.get_by_text(re.compile("Token works")).wait_for()
    dialog.get_by_role("button", name="Save").click()
    page.get_by_text("Saved", exact=True).wait_for()
    accounts = gateway.admin("GET", "/admin/tokens", params={"tag": tag}).json()["data"]
    assert any(a["note"] == "from the browser" for a in accounts)
    assert all("extra" in a["tags"] and a["status"]["state"] == "active" for a in accounts)
    # Export (after a confirmation) downloads the unmasked tokens: the only place they appear.
    page.get_by_role("button", name="Export", exact=True).click()
    with page.expect_download() as download:
        page.get_by_role("dialog").get_by_role("button", name="Export").click()
    exported = Path(download.value.path()).read_text()
    assert all(t in exported for t in tokens)


def test_keyboard_only_login_and_accounts(console, gateway: Gateway) -> None:
    gateway.import_accounts(1)
    c: Console = console()
    c.open()
    page = c.page
    page.locator("input[type=password]").wait_for()
    # The password field has focus on arrival; type and submit with Enter.
    assert page.evaluate("document.activeElement.type") == "password"
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    page.locator("nav#nav").wait_for()
    assert page.evaluate("document.activeElement.id") == "main"  # focus starts at the page that opened
    # On a fresh load the first Tab reaches the skip link (visible, outlined); Enter moves focus to the page.
    page.reload()
    page.locator("nav#nav").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    assert page.locator(".skip").is_visible()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Shift+Tab")  # back into the menu, before the page

    def tab_to(predicate: str, limit: int = 40) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"(() => {{ const el = document.activeElement; return {predicate}; }})()"):
                return
        raise AssertionError(f"Tab never reached: {predicate}")

    def shift_tab_to(predicate: str, limit: int = 40) -> None:
        for _ in range(limit):
            if page.evaluate(f"(() => {{ const el = document.activeElement; return {predicate}; }})()"):
                return
            page.keyboard.press("Shift+Tab")
        raise AssertionError(f"Shift+Tab never reached: {predicate}")

    shift_tab_to("el.getAttribute('href') === '#/accounts'")
    page.keyboard.press("Enter")
    page.locator("main h1", has_text="Accounts").wait_for()
    page.locator("tbody tr").first.wait_for()
    tab_to("el.type === 'checkbox' && el.closest('tbody')")
    page.keyboard.press("Space")
    assert page.get_by_text("1 selected").is_visible()
    tab_to("el.tagName === 'BUTTON' && el.classList.contains('link')")
    page.keyboard.press("Enter")
    page.get_by_role("dialog").wait_for()
    page.keyboard.press("Escape")
    page.get_by_role("dialog").wait_for(state="detached")
    assert page.evaluate("document.activeElement.classList.contains('link')")  # focus went back to the opener


# ---- playground --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_playground_chat_streams(console, gateway: Gateway, lang: str) -> None:
    gateway.import_accounts(1, "heavy")
    words = [f"w{i}" for i in range(40)]
    gateway.sim.configure(token_delay=0.03)
    try:
        gateway.sim.script_replies(None, [" ".join(words)])
        c: Console = console(lang=lang)
        c.login()
        c.go("playground")
        page = c.page
        page.get_by_label(T[lang]["message"]).fill("hello from the browser")
        page.get_by_role("button", name=T[lang]["send"], exact=True).click()
        content = page.locator(".msg.assistant .content")
        seen: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = content.inner_text()
            if not seen or seen[-1] != text:
                seen.append(text)
            if text == " ".join(words):
                break
            time.sleep(0.05)
        assert seen[-1] == " ".join(words), (seen[-3:], page.locator(".chat-log").inner_text())
        partial = [s for s in seen if s not in ("…", "", " ".join(words))]
        assert len(partial) >= 2, f"the answer did not stream: {seen}"
        page.get_by_role("status").filter(has_text=re.compile(r"first token|首字")).wait_for()
        c.shot("playground-chat")
        # History stays in the browser.
        page.reload()
        page.locator(".msg.assistant .content", has_text="w39").wait_for()
    finally:
        gateway.sim.configure(token_delay=0.0)
        gateway.sim.clear_replies()


def test_playground_images_fill_the_grid_as_partials_arrive(console, gateway: Gateway) -> None:
    gateway.import_accounts(1)
    c: Console = console()
    c.login()
    c.go("playground")
    page = c.page
    page.get_by_role("tab", name="Images").click()
    page.evaluate("""() => {
        window.__partials = 0;
        new MutationObserver((ms) => { for (const m of ms) for (const n of m.addedNodes)
          if (n.tagName === 'IMG' && n.closest('.slot.partial')) window.__partials++; })
          .observe(document.body, {subtree: true, childList: true});
    }""")
    page.get_by_label("Prompt").fill("a lighthouse at dawn")
    page.get_by_label("Count").fill("2")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text(re.compile("Took|Error")).or_(page.locator(".error-box")).first.wait_for()
    assert not page.locator(".error-box").count(), page.locator(".error-box").inner_text()
    page.get_by_text("Took").wait_for()
    expect(page.locator(".slot img")).to_have_count(2)
    assert page.evaluate("window.__partials") >= 1, "no partial image was shown"
    c.shot("playground-images")


def test_playground_video_runs_a_job_and_plays_it(console, gateway: Gateway) -> None:
    gateway.import_accounts(1)
    c: Console = console()
    c.login()
    c.go("playground")
    page = c.page
    page.get_by_role("tab", name="Video").click()
    page.get_by_label("Prompt").fill("a paper boat on a river")
    page.get_by_role("button", name="Create video").click()
    page.locator("video.player").or_(page.locator(".error-box")).first.wait_for(timeout=60_000)
    assert not page.locator(".error-box").count(), page.locator(".error-box").inner_text()
    src = page.locator("video.player").get_attribute("src") or ""
    assert src.startswith("blob:")
    assert plays(page.locator("video.player")) == (96, 160)  # the simulator's H.264 clip, decoded and played
    assert page.get_by_role("link", name="Download").count() == 1
    # the job the page ran is completed in the gateway, and its content is the stored MP4 (first box `ftyp`)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    jobs = httpx.get(gateway.url + "/v1/videos", headers=headers, timeout=30).json()["data"]
    job = next(j for j in jobs if j["prompt"] == "a paper boat on a river")
    assert job["status"] == "completed"
    content = httpx.get(gateway.url + f"/v1/videos/{job['id']}/content", headers=headers, timeout=30,
                        follow_redirects=True)
    assert content.status_code == 200 and content.content[4:8] == b"ftyp"
    c.shot("playground-video")
