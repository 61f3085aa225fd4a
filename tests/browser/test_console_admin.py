"""Keys, request log, settings, media and every page's screenshot + accessibility check, in a real Chromium."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import openai
import pytest

from tests.browser.conftest import Console, Gateway, T, expect

LANGS = ["en", "zh"]


@pytest.mark.parametrize("lang", LANGS)
def test_key_secret_once_used_by_the_sdk_then_in_log_and_usage(console, gateway: Gateway, lang: str) -> None:
    gateway.import_accounts(1)
    name = f"sdk-{lang}-{uuid.uuid4().hex[:6]}"
    c: Console = console(lang=lang)
    c.login()
    c.go("keys")
    page = c.page
    page.get_by_role("button", name=T[lang]["create_key"]).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label(re.compile("^Name$|^名称$")).fill(name)
    dialog.get_by_role("button", name=T[lang]["create"], exact=True).click()
    secret_box = page.get_by_role("dialog").locator("input.secret")
    secret_box.wait_for()
    secret = secret_box.input_value()
    assert secret.startswith("sk-g2a-")
    page.get_by_role("dialog").get_by_role("button", name=re.compile("^Copy$|^复制$")).wait_for()
    c.shot("keys-secret")
    page.get_by_role("dialog").get_by_role("button", name=re.compile("^Done$|^完成$")).click()
    page.locator("tbody", has_text=name).wait_for()
    assert secret not in page.content()  # shown once, never again
    assert secret not in gateway.admin("GET", "/admin/keys").text

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=secret, max_retries=0)
    answer = client.chat.completions.create(model="grok-4.5-fast", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content

    # The request is in the log, under the key's name, with its detail.
    c.go("logs")
    key_filter = page.get_by_label(re.compile("^Key$|^密钥$"))
    key_filter.locator("option", has_text=name).wait_for(state="attached")
    key_filter.select_option(label=name)
    row = page.locator("tbody tr", has_text=name)
    row.first.wait_for()
    assert "/v1/chat/completions" in row.first.inner_text()
    row.first.locator("button.link").click()
    page.get_by_role("dialog").get_by_text("grok-4.5-fast").first.wait_for()
    c.shot("logs-detail")
    page.keyboard.press("Escape")
    # The key's usage: today's count on the list, the day in its detail.
    c.go("keys")
    key_row = page.locator("tbody tr", has_text=name)
    expect(key_row).to_contain_text(re.compile(r"(?<![0-9])1 \(0 ✗\)"))  # today: 1 request, 0 failed
    key_row.locator("button.link").click()
    page.get_by_role("dialog").locator("tbody tr").first.wait_for()
    assert time.strftime("%Y%m%d", time.gmtime()) in page.get_by_role("dialog").inner_text()


def test_key_rotate_shows_a_new_secret_once_and_disable_refuses_it(console, gateway: Gateway) -> None:
    name = f"rot-{uuid.uuid4().hex[:6]}"
    created = gateway.admin("POST", "/admin/keys", json={"name": name}).json()
    old_secret = created["secret"]
    c: Console = console()
    c.login()
    c.go("keys")
    page = c.page
    row = page.locator("tbody tr", has_text=name)
    row.locator("button", has_text="Rotate").click()
    page.get_by_role("dialog").get_by_role("button", name="Rotate").click()
    new_secret = page.locator("input.secret").input_value()
    assert new_secret.startswith("sk-g2a-") and new_secret != old_secret
    page.get_by_role("button", name="Done").click()
    row.locator("button", has_text="Disable").click()
    page.locator("tbody tr", has_text=name).get_by_text("Disabled").wait_for()
    refused = httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {new_secret}"})
    assert refused.status_code in (401, 403)
    assert httpx.get(gateway.url + "/v1/models", headers={"Authorization": f"Bearer {old_secret}"}).status_code == 401


def test_setting_change_is_in_force_and_bad_values_show_the_gateway_message(console, gateway: Gateway, browser) -> None:
    c: Console = console()
    c.errors.allow(r"/admin/settings$", 400)
    c.login()
    c.go("settings")
    page = c.page
    # A bad value: the gateway's own validation message appears next to the field.
    entries = page.get_by_label("LOG_MAX_ENTRIES", exact=True)
    entries.fill("5")
    page.get_by_role("button", name="Save", exact=True).click()
    error = page.locator("#set-LOG_MAX_ENTRIES-err")
    error.filter(has_text=re.compile(r"\S")).wait_for()
    assert "LOG_MAX_ENTRIES" in error.inner_text() or "100" in error.inner_text()
    entries.fill("")
    # Turn the public playground on: the setting is in force at once (GET /admin/public, a browser with no session).
    page.get_by_label("PUBLIC_PLAYGROUND", exact=True).check()
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator(".setting", has_text="PUBLIC_PLAYGROUND").get_by_text("store (set here)").wait_for()
    c.shot("settings")
    try:
        assert httpx.get(gateway.url + "/admin/public").json() == {"enabled": True, "key_required": False}
        visitor: Console = console()
        visitor.open()
        visitor.page.get_by_role("link", name="Open the public playground").click()
        visitor.page.get_by_label("Message").fill("hello from a visitor")
        visitor.page.get_by_role("button", name="Send", exact=True).click()
        visitor.page.locator(".msg.assistant .content").filter(has_text=re.compile(r"\w")).wait_for()
        assert not visitor.page.locator("nav a[href='#/accounts']").count()  # no console pages without a session
        visitor.shot("playground-public")
    finally:
        page.locator(".setting", has_text="PUBLIC_PLAYGROUND").get_by_role("button", name="Back to environment").click()
        page.locator(".setting", has_text="PUBLIC_PLAYGROUND").get_by_text("default").wait_for()
    assert httpx.get(gateway.url + "/admin/public").json()["enabled"] is False


def test_generated_image_is_in_the_gallery(console, gateway: Gateway) -> None:
    gateway.import_accounts(1)
    prompt = f"gallery lighthouse {uuid.uuid4().hex[:6]}"
    c: Console = console()
    c.login()
    c.go("playground")
    page = c.page
    page.get_by_role("tab", name="Images").click()
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_label("Count").fill("1")
    page.get_by_label(re.compile("Keep in the media gallery")).check()
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text("Took").wait_for()
    assert not page.locator(".error-box").count()
    c.go("media")
    tile = page.locator(".tile", has_text=prompt)
    tile.wait_for()
    tile.locator("img").wait_for()
    assert tile.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    c.shot("media")


# ---- every page, both languages, desktop and phone: screenshots and axe-core -------------------------------------

PAGES = ["dashboard", "accounts", "keys", "logs", "media", "settings", "playground"]


@pytest.mark.parametrize("device", ["desktop", "phone"])
@pytest.mark.parametrize("lang", LANGS)
def test_every_page_screenshot_and_accessibility(console, gateway: Gateway, lang: str, device: str) -> None:
    gateway.import_accounts(1)
    c: Console = console(lang=lang, device=device)
    c.open()
    c.page.locator("input[type=password]").wait_for()
    violations = {"login": c.axe()}
    c.login()
    page = c.page
    for name in PAGES:
        c.go(name)
        page.wait_for_load_state("networkidle")
        c.shot(name)
        violations[name] = c.axe()
        if device == "phone":  # nothing wider than the screen except inside the scrollable tables
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{name}: the page scrolls sideways by {overflow}px on a phone"
    if device == "phone":
        menu = page.get_by_role("button", name=re.compile("^Menu$|^菜单$"))
        assert not page.locator("nav#nav a").first.is_visible()
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        page.locator("nav#nav a").first.wait_for(state="visible")
        page.wait_for_timeout(300)  # the drawer's slide-in
        c.shot("drawer")
        page.locator("nav#nav a[href='#/accounts']").click()
        page.locator("main h1", has_text=T[lang]["accounts"]).wait_for()
        assert not page.locator("nav#nav a").first.is_visible()
    # Dark theme too (colour contrast is checked separately there).
    page.get_by_label(re.compile("^Theme$|^主题$")).select_option("dark")
    c.go("dashboard")
    page.wait_for_load_state("networkidle")
    c.shot("dashboard-dark")
    violations["dashboard-dark"] = c.axe()
    bad = {k: v for k, v in violations.items() if v}
    assert not bad, bad


def test_live_tail_polls_only_while_the_tab_is_visible(console, gateway: Gateway) -> None:
    c: Console = console()
    c.login()
    c.go("logs")
    page = c.page
    polls: list[float] = []
    page.on("request", lambda r: polls.append(time.monotonic()) if "/admin/logs?" in r.url else None)
    page.get_by_label("Live tail").check()
    page.wait_for_timeout(5600)
    assert len(polls) >= 2, polls  # at once, then every 5 s
    page.evaluate("""() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
                             document.dispatchEvent(new Event('visibilitychange')); }""")
    hidden_at = len(polls)
    page.wait_for_timeout(6000)
    assert len(polls) == hidden_at, "the log was polled while the tab was hidden"
    page.evaluate("""() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
                             document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_timeout(500)
    assert len(polls) == hidden_at + 1  # back at once when visible again
