// API keys: create (the secret is shown once, with a copy button), limits, allow-list, expiry, usage per key,
// enable/disable, rotate, delete.
import { h, clear, api, field, errorBox, toast, dialog, confirmDialog, badge, table, num, when, ago, copyText } from "g2a/core.js";
import { t } from "g2a/i18n.js";
import { barChart } from "g2a/charts.js";

const SCOPES = ["chat", "images", "video"];

export default function keys(main) {
  const listEl = h("div", {});
  const searchIn = h("input", { type: "search", onchange: () => load() });
  clear(main, h("div", { class: "page-head" }, h("h1", {}, t("page_keys")),
    h("button", { class: "btn primary", type: "button", onclick: () => editor(null) }, t("create_key"))),
  h("section", { class: "card" }, h("div", { class: "filters", role: "search" }, field(t("search"), searchIn)), listEl));

  async function load() {
    try {
      const q = searchIn.value.trim();
      const page = await api(`/admin/keys?limit=200${q ? `&q=${encodeURIComponent(q)}` : ""}`);
      render(page.data, page.total);
    } catch (error) {
      clear(listEl, error.status === 404 ? h("p", { class: "muted" }, t("not_available_yet"), " (", error.message, ")") : errorBox(error));
    }
  }

  function render(rows, total) {
    clear(listEl, h("p", { class: "muted" }, `${t("total")}: ${num(total ?? rows.length)}`), table([
      { label: t("name"), cell: (k) => h("button", { class: "link", type: "button", onclick: () => detail(k.id) }, k.name || k.id) },
      { label: t("key"), cell: (k) => h("span", { class: "mono" }, k.prefix) },
      { label: t("state"), cell: (k) => badge(k.enabled ? t("enabled") : t("disabled"), k.enabled ? "active" : "disabled") },
      { label: t("models"), cell: (k) => (k.models?.length ? k.models.join(", ") : t("all")) },
      { label: t("limits"), cell: (k) => limits(k) },
      { label: t("today"), class: "num", cell: (k) => `${num(k.today?.requests || 0)} (${num(k.today?.failed || 0)} ✗)` },
      { label: t("expires"), cell: (k) => (k.expires_at ? when(k.expires_at) : t("never")) },
      { label: t("last_used"), cell: (k) => ago(k.last_used_at) },
      { label: h("span", { class: "sr-only" }, t("actions")), cell: (k) => h("div", { class: "row" },
        h("button", { class: "btn small", type: "button", onclick: () => patch(k.id, { enabled: !k.enabled }) }, k.enabled ? t("disable") : t("enable")),
        h("button", { class: "btn small", type: "button", onclick: () => editor(k) }, t("edit")),
        h("button", { class: "btn small", type: "button", onclick: () => rotate(k) }, t("rotate")),
        h("button", { class: "btn small danger", type: "button", onclick: () => remove(k) }, t("delete"))) },
    ], rows, { caption: t("page_keys"), empty: t("no_keys") }));
  }

  async function patch(keyId, body) {
    try {
      await api(`/admin/keys/${encodeURIComponent(keyId)}`, { method: "PATCH", json: body });
      toast(t("saved"));
      load();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function rotate(k) {
    if (!(await confirmDialog(t("rotate_confirm", { name: k.name }), { ok: t("rotate") }))) return;
    try {
      const answer = await api(`/admin/keys/${encodeURIComponent(k.id)}/rotate`, { method: "POST" });
      showSecret(answer.secret);
      load();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function remove(k) {
    if (!(await confirmDialog(t("delete_key_confirm", { name: k.name }), { danger: true, ok: t("delete") }))) return;
    try {
      await api(`/admin/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" });
      toast(t("deleted"));
      load();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  function editor(k) {
    const name = h("input", { type: "text", required: true, value: k?.name || "", name: "name" });
    const note = h("input", { type: "text", value: k?.note || "" });
    const models = h("input", { type: "text", value: (k?.models || []).join(", "), placeholder: "grok-4.5*, grok-imagine-image" });
    const scopes = SCOPES.map((s) => h("input", { type: "checkbox", value: s, checked: !k || (k.scopes || SCOPES).includes(s) }));
    const numIn = (v) => h("input", { type: "number", min: 0, value: v ?? "" });
    const rpm = numIn(k?.rpm);
    const rpd = numIn(k?.rpd);
    const conc = numIn(k?.concurrency);
    const quotaKind = h("select", {}, ["", "requests", "tokens"].map((v) => h("option", { value: v, selected: (k?.quota?.kind || "") === v }, v ? t(`quota_${v}`) : t("none"))));
    const quotaLimit = numIn(k?.quota?.limit);
    const quotaPeriod = h("select", {}, ["day", "week", "month", "total"].map((v) => h("option", { value: v, selected: k?.quota?.period === v }, t(`period_${v}`))));
    const expires = h("input", { type: "datetime-local", value: k?.expires_at ? toLocalInput(k.expires_at) : "" });
    const msg = h("div", { "aria-live": "assertive" });
    const save = h("button", { class: "btn primary", type: "submit", form: "key-form" }, k ? t("save") : t("create"));
    const intOrNull = (el) => (el.value === "" ? null : Number(el.value));
    const form = h("form", { id: "key-form", class: "stack", onsubmit: async (e) => {
      e.preventDefault();
      const body = {
        name: name.value.trim(), note: note.value,
        models: models.value.split(",").map((s) => s.trim()).filter(Boolean),
        scopes: scopes.filter((c) => c.checked).map((c) => c.value),
        rpm: intOrNull(rpm), rpd: intOrNull(rpd), concurrency: intOrNull(conc),
        quota: quotaKind.value ? { kind: quotaKind.value, limit: Number(quotaLimit.value) || 0, period: quotaPeriod.value } : null,
        expires_at: expires.value ? new Date(expires.value).getTime() / 1000 : null,
      };
      save.disabled = true;
      try {
        if (k) {
          await api(`/admin/keys/${encodeURIComponent(k.id)}`, { method: "PATCH", json: body });
          d.close();
          toast(t("saved"));
        } else {
          const answer = await api("/admin/keys", { method: "POST", json: { ...body, enabled: true } });
          d.close();
          showSecret(answer.secret);
        }
        load();
      } catch (error) {
        clear(msg, errorBox(error));
        save.disabled = false;
      }
    } },
    field(t("name"), name), field(t("note"), note), field(t("allowed_models"), models, t("allowed_models_hint")),
    h("fieldset", {}, h("legend", {}, t("scopes")), scopes.map((c) => h("label", { class: "check" }, c, t(`scope_${c.value}`)))),
    h("div", { class: "grid3" }, field(t("rpm"), rpm), field(t("rpd"), rpd), field(t("concurrency"), conc)),
    h("fieldset", {}, h("legend", {}, t("quota")), h("div", { class: "grid3" }, field(t("kind"), quotaKind), field(t("limit"), quotaLimit),
      field(t("period"), quotaPeriod))),
    field(t("expires"), expires, t("expires_hint")), msg);
    const d = dialog(k ? `${t("edit")} ${k.name}` : t("create_key"), form, { wide: true, actions: [save] });
    name.focus();
  }

  async function detail(keyId) {
    try {
      const k = await api(`/admin/keys/${encodeURIComponent(keyId)}`);
      const usage = (k.usage || []).slice().sort((a, b) => (a.day < b.day ? -1 : 1));
      dialog(`${t("key")} ${k.name}`, h("div", { class: "stack" },
        h("dl", { class: "props" }, [
          [t("key"), h("span", { class: "mono" }, k.prefix)], [t("note"), k.note || "—"], [t("scopes"), (k.scopes || []).join(", ")],
          [t("limits"), limits(k)], [t("created"), when(k.created_at)], [t("last_used"), when(k.last_used_at)],
          [t("quota_used"), k.quota ? `${num(k.quota_used)} / ${num(k.quota.limit)} ${t(`quota_${k.quota.kind}`)}` : "—"],
        ].map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)])),
        barChart({ title: t("usage_30d"), rows: usage.map((u) => [u.day, u.requests]), empty: t("no_usage") }),
        table([
          { label: t("day"), cell: (u) => u.day }, { label: t("requests"), class: "num", cell: (u) => num(u.requests) },
          { label: t("ok"), class: "num", cell: (u) => num(u.ok) }, { label: t("failed"), class: "num", cell: (u) => num(u.failed) },
          { label: t("tokens"), class: "num", cell: (u) => num((u.prompt_tokens || 0) + (u.completion_tokens || 0)) },
          { label: t("page_media"), class: "num", cell: (u) => num(u.media) },
        ], usage.reverse(), { caption: t("usage_30d"), empty: t("no_usage") })), { wide: true });
    } catch (error) {
      toast(error.message, "error");
    }
  }

  load();
  return null;
}

function limits(k) {
  const parts = [];
  if (k.rpm) parts.push(`${num(k.rpm)} ${t("per_min")}`);
  if (k.rpd) parts.push(`${num(k.rpd)} ${t("per_day")}`);
  if (k.concurrency) parts.push(`${num(k.concurrency)} ${t("concurrent")}`);
  if (k.quota) parts.push(`${num(k.quota_used)}/${num(k.quota.limit)} ${t(`quota_${k.quota.kind}`)}/${t(`period_${k.quota.period}`)}`);
  return parts.length ? parts.join(" · ") : t("unlimited");
}

function toLocalInput(epoch) {
  const d = new Date(epoch * 1000);
  d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
  return d.toISOString().slice(0, 16);
}

// The secret exists only in this dialog: it is never stored by the console and the gateway never shows it again.
function showSecret(secret) {
  const box = h("input", { type: "text", readonly: true, value: secret, class: "mono secret", "aria-label": t("secret_key") });
  const d = dialog(t("secret_once_title"), h("div", { class: "stack" },
    h("p", { class: "warn" }, t("secret_once")),
    h("div", { class: "row" }, box, h("button", { class: "btn primary", type: "button", onclick: () => copyText(secret) }, t("copy")))),
  { actions: [h("button", { class: "btn", type: "button", onclick: () => d.close() }, t("done"))] });
  box.select();
  box.focus();
}
