// The shell: session check, login page, navigation (a drawer on phones), language and theme switches, and a
// hash router (#/accounts) so console pages never collide with the admin API's own paths.
import { h, clear, api, session, setUnauthorizedHandler, field, errorBox, store } from "g2a/core.js";
import { t, lang, setLang } from "g2a/i18n.js";

const PAGES = {
  dashboard: { icon: "▦", load: () => import("g2a/pages/dashboard.js") },
  accounts: { icon: "◉", load: () => import("g2a/pages/accounts.js") },
  keys: { icon: "◆", load: () => import("g2a/pages/keys.js") },
  logs: { icon: "≡", load: () => import("g2a/pages/logs.js") },
  media: { icon: "▣", load: () => import("g2a/pages/media.js") },
  settings: { icon: "⚙", load: () => import("g2a/pages/settings.js") },
  playground: { icon: "▶", load: () => import("g2a/pages/playground.js"), public: true },
};

let cleanup = null;
const root = document.getElementById("root");

// ---- theme ------------------------------------------------------------------------------------------------------
function applyTheme() {
  const theme = store.get("g2a.theme", "auto");
  if (theme === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}

function themeSwitch() {
  const select = h("select", { class: "compact", onchange: (e) => { store.set("g2a.theme", e.target.value); applyTheme(); } },
    ["auto", "light", "dark"].map((v) => h("option", { value: v, selected: store.get("g2a.theme", "auto") === v },
      t(`theme_${v}`))));
  return field(t("theme"), select);
}

function langSwitch() {
  const select = h("select", { class: "compact", onchange: (e) => { setLang(e.target.value); render(); } },
    h("option", { value: "en", selected: lang() === "en", lang: "en" }, "English"),
    h("option", { value: "zh", selected: lang() === "zh", lang: "zh" }, "中文"));
  return field(t("language"), select);
}

// ---- login ------------------------------------------------------------------------------------------------------
async function loginPage(publicInfo) {
  cleanup?.();
  cleanup = null;
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const message = h("div", { "aria-live": "assertive" });
  const button = h("button", { class: "btn primary", type: "submit" }, t("log_in"));
  const form = h("form", { class: "card login-card", "aria-labelledby": "login-title",
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      clear(message);
      try {
        const answer = await api("/admin/login", { method: "POST", json: { password: password.value }, quiet401: true });
        session.csrf = answer.csrf;
        session.authenticated = true;
        if (!location.hash || location.hash === "#/login") location.hash = "#/dashboard";
        render();
      } catch (error) {
        clear(message, errorBox(error));
        password.select();
        password.focus();
      } finally {
        button.disabled = false;
      }
    } },
    h("h1", { id: "login-title" }, "Grok2API"),
    h("p", { class: "muted" }, t("login_intro")),
    field(t("admin_password"), password),
    message,
    button,
    publicInfo?.enabled ? h("p", {}, h("a", { href: "#/playground" }, t("open_public_playground"))) : null);
  clear(root,
    h("main", { id: "main", class: "login", tabindex: "-1" }, form,
      h("div", { class: "login-switches" }, langSwitch(), themeSwitch())));
  password.focus();
}

// ---- shell ------------------------------------------------------------------------------------------------------
function nav(current) {
  const names = session.authenticated ? Object.keys(PAGES) : ["playground"];
  return h("nav", { id: "nav", class: "nav", "aria-label": t("main_menu") },
    h("ul", {}, names.map((name) => h("li", {},
      h("a", { href: `#/${name}`, "aria-current": name === current ? "page" : null,
        onclick: () => document.body.classList.remove("drawer-open") },
        h("span", { class: "nav-icon", "aria-hidden": "true" }, PAGES[name].icon), t(`page_${name}`))))));
}

async function logout() {
  try { await api("/admin/logout", { method: "POST" }); } catch { /* the session may be gone already */ }
  session.authenticated = false;
  session.csrf = null;
  location.hash = "#/login";
  render();
}

function shell(current) {
  const toggle = h("button", { class: "icon-btn menu-btn", type: "button", "aria-controls": "nav",
    "aria-expanded": "false", "aria-label": t("menu"),
    onclick: (e) => {
      const open = document.body.classList.toggle("drawer-open");
      e.currentTarget.setAttribute("aria-expanded", String(open));
      if (open) document.querySelector("#nav a")?.focus();
    } }, "☰");
  const main = h("main", { id: "main", tabindex: "-1" });
  clear(root,
    h("header", { class: "topbar" }, toggle,
      h("a", { class: "brand", href: "#/dashboard" }, h("img", { src: document.querySelector("link[rel=icon]").href,
        alt: "", width: 24, height: 24 }), "Grok2API"),
      h("div", { class: "top-actions" }, langSwitch(), themeSwitch(),
        session.authenticated ? h("button", { class: "btn", type: "button", onclick: logout }, t("log_out"))
          : h("a", { class: "btn", href: "#/login" }, t("log_in")))),
    h("div", { class: "layout" }, nav(current),
      h("div", { class: "scrim", "aria-hidden": "true", onclick: () => document.body.classList.remove("drawer-open") }),
      main));
  return main;
}

let publicInfo = null;

async function render() {
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  document.querySelector(".skip").textContent = t("skip_to_content");
  const name = (location.hash.replace(/^#\/?/, "").split("?")[0] || "dashboard");
  if (!session.authenticated) {
    if (name === "playground" && publicInfo?.enabled) {
      session.publicMode = true;
      return show("playground");
    }
    return loginPage(publicInfo);
  }
  if (name === "login") { location.hash = "#/dashboard"; return; }
  return show(PAGES[name] ? name : "dashboard");
}

let shown = false;

async function show(name) {
  cleanup?.();
  cleanup = null;
  const main = shell(name);
  if (shown) main.focus(); // after a route change, focus starts at the new page (screen readers announce it)
  shown = true;
  document.title = `${t(`page_${name}`)} · Grok2API`;
  try {
    const module = await PAGES[name].load();
    cleanup = (await module.default(main)) || null;
  } catch (error) {
    clear(main, h("h1", {}, t(`page_${name}`)), errorBox(error));
  }
}

async function boot() {
  applyTheme();
  // The skip link must not change the hash (the router owns it): it moves focus to the main region.
  document.querySelector(".skip").addEventListener("click", (e) => {
    e.preventDefault();
    document.getElementById("main")?.focus();
  });
  setUnauthorizedHandler(() => {
    if (!session.authenticated) return;
    session.authenticated = false;
    session.csrf = null;
    render();
  });
  const [state, pub] = await Promise.all([
    api("/admin/session", { quiet401: true }).catch(() => ({ authenticated: false })),
    api("/admin/public", { quiet401: true }).catch(() => ({ enabled: false })),
  ]);
  publicInfo = pub;
  session.authenticated = !!state.authenticated;
  session.csrf = state.csrf || null;
  window.addEventListener("hashchange", render);
  await render();
}

boot();
