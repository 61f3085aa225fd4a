// Request log: filters, pages (cursor), a live tail that polls every 5 s only while the tab is visible, and the
// detail of one request.
import { h, clear, api, field, errorBox, toast, dialog, badge, table, num, when, poll } from "g2a/core.js";
import { t } from "g2a/i18n.js";

const FILTERS = ["status", "model", "key", "account", "route"];

export default function logs(main) {
  const inputs = Object.fromEntries(FILTERS.map((f) => [f, f === "status"
    ? h("select", { onchange: () => load(true) }, ["", "ok", "error", "4xx", "5xx", "429"].map((v) => h("option", { value: v }, v || t("all"))))
    : f === "key" ? h("select", { onchange: () => load(true) }, h("option", { value: "" }, t("all")), h("option", { value: "env" }, "API_KEYS"))
      : h("input", { type: "text", onchange: () => load(true) })]));
  // The key filter is a key id: offer the keys by name (one call; a gateway without store keys keeps "all").
  api("/admin/keys?limit=500").then((page) => inputs.key.append(...page.data.map((k) => h("option", { value: k.id }, k.name))))
    .catch(() => {});
  const listEl = h("div", { "aria-live": "off" });
  const more = h("button", { class: "btn", type: "button", hidden: true, onclick: () => load(false) }, t("load_more"));
  const tailStatus = h("span", { class: "muted", role: "status" });
  let stopTail = null;
  const tail = h("input", { type: "checkbox", id: "live-tail", onchange: (e) => {
    stopTail?.();
    stopTail = e.target.checked ? poll(() => load(true, true), 5000) : null;
    tailStatus.textContent = e.target.checked ? t("tail_on") : "";
  } });
  let rows = [];
  let next = null;
  clear(main, h("div", { class: "page-head" }, h("h1", {}, t("page_logs")),
    h("div", { class: "row" }, h("label", { class: "check", for: "live-tail" }, tail, t("live_tail")), tailStatus)),
  h("section", { class: "card" }, h("div", { class: "filters", role: "search" }, FILTERS.map((f) => field(t(`filter_${f}`), inputs[f]))),
    listEl, more));

  async function load(reset, quiet) {
    try {
      const params = new URLSearchParams({ limit: "50" });
      for (const f of FILTERS) if (inputs[f].value.trim()) params.set(f, inputs[f].value.trim());
      if (!reset && next) params.set("cursor", next);
      const page = await api(`/admin/logs?${params}`);
      rows = reset ? page.data : [...rows, ...page.data];
      next = page.next_cursor;
      render();
      if (quiet) tailStatus.textContent = `${t("tail_on")} · ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      clear(listEl, error.status === 404 ? h("p", { class: "muted" }, t("not_available_yet"), " (", error.message, ")") : errorBox(error));
    }
  }

  function render() {
    clear(listEl, table([
      { label: t("time"), cell: (e) => h("button", { class: "link", type: "button", onclick: () => detail(e.id) }, when(e.time)) },
      { label: t("filter_status"), cell: (e) => badge(String(e.status), e.status < 400 ? "active" : e.status === 429 ? "cooling" : "invalid") },
      { label: t("filter_route"), cell: (e) => h("span", { class: "mono" }, e.route) },
      { label: t("model"), cell: (e) => e.model || "—" },
      { label: t("key"), cell: (e) => e.key_name || e.key_id || "—" },
      { label: t("account"), cell: (e) => h("span", { class: "mono" }, e.account || "—") },
      { label: t("latency"), class: "num", cell: (e) => `${num(e.latency_ms)} ms` },
      { label: t("tokens"), class: "num", cell: (e) => `${num(e.prompt_tokens)} / ${num(e.completion_tokens)}` },
      { label: t("error"), cell: (e) => e.error_kind || "" },
    ], rows, { caption: t("page_logs"), empty: t("no_requests") }));
    more.hidden = !next;
  }

  async function detail(entryId) {
    try {
      const e = await api(`/admin/logs/${encodeURIComponent(entryId)}`);
      const pairs = Object.entries(e).filter(([k]) => !["prompt", "answer"].includes(k));
      dialog(`${t("request")} ${e.id}`, h("div", { class: "stack" },
        h("dl", { class: "props" }, pairs.map(([k, v]) => [h("dt", {}, k),
          h("dd", { class: "mono" }, k === "time" ? when(v) : v === null || v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v))])),
        e.prompt ? [h("h3", {}, t("prompt")), h("pre", {}, typeof e.prompt === "string" ? e.prompt : JSON.stringify(e.prompt, null, 2))] : null,
        e.answer ? [h("h3", {}, t("answer")), h("pre", {}, typeof e.answer === "string" ? e.answer : JSON.stringify(e.answer, null, 2))] : null),
      { wide: true });
    } catch (error) {
      toast(error.message, "error");
    }
  }

  load(true);
  return () => stopTail?.();
}
