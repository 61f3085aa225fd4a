// Small helpers every page uses: elements, the admin/API fetch wrapper, polling that sleeps in hidden tabs,
// toasts, dialogs and formatting. No framework: a page is a function that fills an element.
import { t, lang } from "g2a/i18n.js";

// h("button", {class: "btn", onclick: fn, "aria-label": "x"}, "text", child, [more]) → Element
export function h(tag, attrs, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" && !svg) el.value = v;
    else if (k === "checked" || k === "selected" || k === "indeterminate") el[k] = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
export const id = (prefix = "f") => `${prefix}-${++uid}`;

// A labelled form field: field(t("name"), input) → <div class="field"><label for>…</label>input</div>
export function field(label, input, hint) {
  if (!input.id) input.id = id();
  const hintEl = hint ? h("small", { class: "hint", id: input.id + "-hint" }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hintEl);
}

// ---- session and API ------------------------------------------------------------------------------------------
export const session = { csrf: null, authenticated: false, publicKey: null, publicMode: false };

export class ApiError extends Error {
  constructor(status, message, code, param) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

// The gateway's own message, whatever the error shape (OpenAI, Anthropic, a bare string).
export function errorMessage(body, status) {
  const e = body && (body.error || body.detail);
  if (e && typeof e === "object" && e.message) return e.message;
  if (typeof e === "string") return e;
  if (body && typeof body.message === "string") return body.message;
  return `HTTP ${status}`;
}

export function authHeaders(method = "GET") {
  const headers = {};
  if (session.authenticated) {
    if (session.csrf) headers["X-CSRF-Token"] = session.csrf;
  } else if (session.publicMode) {
    if (session.publicKey) headers.Authorization = `Bearer ${session.publicKey}`;
    else headers["X-G2A-Playground"] = "1";
  }
  return headers;
}

let onUnauthorized = () => {};
export const setUnauthorizedHandler = (fn) => { onUnauthorized = fn; };

// api("/admin/tokens", {method: "POST", json: {...}}) → parsed JSON (or text with {text: true}); throws ApiError.
export async function api(path, { method = "GET", json, body, headers = {}, text = false, signal, quiet401 } = {}) {
  const init = { method, headers: { ...authHeaders(method), ...headers }, credentials: "same-origin", signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) init.body = body;
  const response = await fetch(path, init);
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { /* not JSON */ }
    const err = data && data.error && typeof data.error === "object" ? data.error : {};
    const error = new ApiError(response.status, errorMessage(data, response.status), err.code, err.param);
    if (response.status === 401 && path.startsWith("/admin") && !quiet401) onUnauthorized(error);
    throw error;
  }
  if (text) return response.text();
  if (response.status === 204) return null;
  return response.json();
}

// ---- polling ----------------------------------------------------------------------------------------------------
// poll(fn, ms): runs fn now and every ms while the tab is visible; stops entirely with the returned stop().
export function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  let running = false;
  const run = async () => {
    timer = null;
    if (stopped || document.hidden || running) return;
    running = true;
    try { await fn(); } catch (e) { console.warn(e); } finally { running = false; }
    if (!stopped && !document.hidden) timer = setTimeout(run, ms);
  };
  const onVisibility = () => {
    if (document.hidden) { clearTimeout(timer); timer = null; } else if (!timer && !running) run();
  };
  document.addEventListener("visibilitychange", onVisibility);
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisibility);
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- feedback ---------------------------------------------------------------------------------------------------
export function toast(message, kind = "info") {
  let region = document.getElementById("toasts");
  if (!region) {
    region = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  const item = h("div", { class: `toast ${kind}` }, message);
  region.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

// An error box inside a page: the gateway's own message.
export const errorBox = (error) =>
  h("p", { class: "error-box", role: "alert" }, error instanceof Error ? error.message : String(error));

export function progressBar(label) {
  const bar = h("progress", { max: 100, value: 0, "aria-label": label });
  const text = h("span", { class: "progress-text" });
  const wrap = h("div", { class: "progress", role: "group", "aria-label": label }, bar, text);
  return {
    el: wrap,
    set(done, total, extra = "") {
      if (total) { bar.max = total; bar.value = done; } else bar.removeAttribute("value");
      text.textContent = total ? `${done} / ${total} ${extra}` : extra;
    },
  };
}

// A modal <dialog>; returns {el, close}. Focus goes to the first control and back to the opener on close.
export function dialog(title, content, { actions = [], wide = false, onclose } = {}) {
  const opener = document.activeElement;
  const titleId = id("dlg");
  const close = () => { el.close(); };
  const el = h("dialog", { class: wide ? "wide" : null, "aria-labelledby": titleId },
    h("header", {}, h("h2", { id: titleId }, title),
      h("button", { class: "icon-btn", type: "button", "aria-label": t("close"), onclick: close }, "×")),
    h("div", { class: "dialog-body" }, content),
    actions.length ? h("footer", {}, actions) : null);
  el.addEventListener("close", () => { el.remove(); onclose?.(); opener?.focus?.(); });
  document.body.append(el);
  el.showModal();
  return { el, close };
}

export function confirmDialog(message, { danger = false, ok = t("confirm") } = {}) {
  return new Promise((resolve) => {
    let answer = false;
    const okBtn = h("button", { class: danger ? "btn danger" : "btn primary", type: "button",
      onclick: () => { answer = true; d.close(); } }, ok);
    const d = dialog(t("are_you_sure"), h("p", {}, message), {
      actions: [h("button", { class: "btn", type: "button", onclick: () => d.close() }, t("cancel")), okBtn],
      onclose: () => resolve(answer),
    });
    okBtn.focus();
  });
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h("textarea", { class: "sr-only", "aria-hidden": "true" }, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast(t("copied"));
}

export function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- formatting -------------------------------------------------------------------------------------------------
const locale = () => (lang() === "zh" ? "zh-CN" : "en-US");
export const num = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString(locale()));
export function when(epoch) {
  if (!epoch) return "—";
  return new Date(epoch * 1000).toLocaleString(locale(), { dateStyle: "short", timeStyle: "medium" });
}
export function ago(epoch) {
  if (!epoch) return "—";
  const s = Math.round(Date.now() / 1000 - epoch);
  const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: "auto" });
  if (Math.abs(s) < 60) return rtf.format(-s, "second");
  if (Math.abs(s) < 3600) return rtf.format(-Math.round(s / 60), "minute");
  if (Math.abs(s) < 86400) return rtf.format(-Math.round(s / 3600), "hour");
  return rtf.format(-Math.round(s / 86400), "day");
}
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}
export const pct = (a, b) => (b ? `${Math.round((100 * a) / b)}%` : "—");

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || text}` }, text);
}

// A scrollable table: columns = [{label, cell: (row) => Node|string, class?}]
export function table(columns, rows, { caption, empty, rowAttrs } = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)));
  const body = rows.length
    ? rows.map((r) => h("tr", rowAttrs ? rowAttrs(r) : {}, columns.map((c) => h("td", { class: c.class }, c.cell(r)))))
    : [h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty || t("nothing_here")))];
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption || t("table") },
    h("table", {}, caption ? h("caption", { class: "sr-only" }, caption) : null, h("thead", {}, head),
      h("tbody", {}, body)));
}

export function fileToDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// Server-sent events from a fetch Response: yields {event, data} with data as text.
export async function* sse(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      let event = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(":")) continue; // heartbeat comment
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "event") event = val;
        else if (name === "data") data.push(val);
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}

// Local storage that never throws (private mode, quota).
export const store = {
  get(key, fallback) {
    try { const v = localStorage.getItem(key); return v === null ? fallback : JSON.parse(v); } catch { return fallback; }
  },
  set(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* full or unavailable */ }
  },
};
