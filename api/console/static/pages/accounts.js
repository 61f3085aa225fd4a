// Accounts: import (paste or file), a filtered list with counts, bulk actions on the selection (refresh quota
// with live progress through the refresh job API), per-account detail, test one, export.
import {
  h, clear, api, field, errorBox, toast, dialog, confirmDialog, progressBar, badge, table, num, ago, when, download, sleep,
} from "g2a/core.js";
import { t } from "g2a/i18n.js";

const TIERS = ["basic", "super", "heavy", "unknown"];
const STATES = ["active", "cooling", "invalid", "disabled"];

export default function accounts(main) {
  const state = { rows: [], next: null, total: null, summary: null, selected: new Set(), filters: { tier: "", status: "", tag: "", q: "", quota: "" },
    seq: 0 };
  const countsEl = h("div", { class: "counts", "aria-live": "polite" });
  const listEl = h("div", {});
  const bulkEl = h("div", { class: "bulk", role: "toolbar", "aria-label": t("bulk_actions") });
  const jobEl = h("div", { "aria-live": "polite" });
  const moreBtn = h("button", { class: "btn", type: "button", hidden: true, onclick: () => load(false) }, t("load_more"));

  // ---- import ----
  const paste = h("textarea", { rows: 4, placeholder: t("import_placeholder"), spellcheck: "false" });
  const file = h("input", { type: "file", accept: ".txt,.json,text/plain,application/json" });
  const tags = h("input", { type: "text", placeholder: "team-a, backup" });
  const importMsg = h("div", { "aria-live": "polite" });
  const importBtn = h("button", { class: "btn primary", type: "submit" }, t("import"));
  const importForm = h("form", { class: "card", "aria-labelledby": "import-title", onsubmit: async (e) => {
    e.preventDefault();
    importBtn.disabled = true;
    clear(importMsg);
    try {
      let text = paste.value;
      if (file.files[0]) text += "\n" + (await file.files[0].text());
      const tagList = tags.value.split(",").map((s) => s.trim()).filter(Boolean);
      const report = await api("/admin/tokens", { method: "POST", json: { tokens: text, tags: tagList } });
      clear(importMsg, importReport(report));
      paste.value = "";
      file.value = "";
      const ids = report.details.added.map((a) => a.account_id).filter(Boolean);
      await load(true);
      if (ids.length) await refreshJob(ids);
    } catch (error) {
      clear(importMsg, errorBox(error));
    } finally {
      importBtn.disabled = false;
    }
  } },
  h("h2", { id: "import-title" }, t("import_tokens")),
  h("div", { class: "grid2" }, field(t("paste_tokens"), paste, t("import_hint")),
    h("div", {}, field(t("token_file"), file), field(t("tags_comma"), tags))),
  importBtn, importMsg);

  // ---- filters ----
  // Searched by the gateway over the whole pool (id, masked token, note, tags), a moment after typing stops.
  let typing = null;
  const search = h("input", { type: "search", placeholder: t("search_accounts"),
    oninput: (e) => { clearTimeout(typing); typing = setTimeout(() => { state.filters.q = e.target.value.trim(); load(true); }, 250); } });
  const select = (name, values, label) => field(label, h("select", { onchange: (e) => { state.filters[name] = e.target.value; load(true); } },
    h("option", { value: "" }, t("all")), values.map((v) => h("option", { value: v }, t(`${name}_${v}`)))));
  const quotaSel = field(t("quota_left"), h("select", { onchange: (e) => { state.filters.quota = e.target.value; load(true); } },
    h("option", { value: "" }, t("all")), h("option", { value: "some" }, t("quota_some")),
    h("option", { value: "none" }, t("quota_none")), h("option", { value: "unknown" }, t("unknown"))));
  const tagFilter = h("input", { type: "text", placeholder: "team-a",
    onchange: (e) => { state.filters.tag = e.target.value.trim(); load(true); } });
  const filters = h("div", { class: "filters", role: "search" }, field(t("search"), search),
    select("tier", TIERS, t("tier")), select("status", STATES, t("state")), field(t("tag"), tagFilter), quotaSel);

  const exportBtn = h("button", { class: "btn", type: "button", onclick: exportTokens }, t("export"));
  const refreshAllBtn = h("button", { class: "btn", type: "button", onclick: () => refreshJob(null) }, t("refresh_stale"));
  clear(main, h("div", { class: "page-head" }, h("h1", {}, t("page_accounts")), h("div", { class: "row" }, refreshAllBtn, exportBtn)),
    importForm, h("section", { class: "card", "aria-label": t("account_list") }, filters, countsEl, bulkEl, jobEl, listEl, moreBtn));

  async function load(reset, rounds = 0) {
    const seq = ++state.seq;  // only the newest answer is shown (a slow one for an older search is dropped)
    if (reset) {  // a new filter: nothing of the old list (nor its "more" cursor) can mix into the new one
      state.next = null;
      moreBtn.hidden = true;
    }
    try {
      const params = new URLSearchParams({ limit: "100" });
      for (const [k, v] of Object.entries(state.filters)) if (v) params.set(k, v);
      if (!reset && state.next) params.set("cursor", state.next);
      const page = await api(`/admin/tokens?${params}`);
      if (seq !== state.seq) return;
      if (reset) { state.rows = []; state.selected.clear(); }
      state.rows.push(...page.data);
      state.next = page.next_cursor;
      state.total = page.total;
      if (page.summary) state.summary = page.summary;
      renderList();
      // A filtered page looks at 1,000 accounts at most and may come back short: read on (5 pages per click)
      // so a rare match deep in a large pool shows up without clicking "more" again and again.
      if (state.next && page.data.length < 100 && rounds < 4) return load(false, rounds + 1);
    } catch (error) {
      if (seq === state.seq) clear(listEl, errorBox(error));
    }
  }

  function renderCounts() {
    const s = state.summary;
    if (!s) return clear(countsEl);
    clear(countsEl,
      h("span", {}, `${t("total")}: ${num(s.total)}`),
      STATES.map((st) => badge(`${t(`status_${st}`)} ${s.by_status?.[st] || 0}`, st)),
      Object.entries(s.by_tier || {}).map(([tier, n]) => badge(`${tier} ${n}`, tier)),
      state.total !== null && state.total !== s.total ? h("span", {}, ` · ${t("matching")}: ${num(state.total)}`) : null);
  }

  function renderBulk() {
    const n = state.selected.size;
    const ids = () => [...state.selected];
    const act = (label, fn, cls = "btn") => h("button", { class: cls, type: "button", disabled: !n, onclick: fn }, label);
    clear(bulkEl, h("span", { class: "muted" }, t("selected_n", { n })),
      act(t("enable"), () => bulk("enable", ids())),
      act(t("disable"), () => bulk("disable", ids())),
      act(t("refresh_quota"), () => refreshJob(ids())),
      act(t("tag"), () => tagDialog(ids())),
      act(t("delete"), async () => {
        if (await confirmDialog(t("delete_accounts_confirm", { n }), { danger: true, ok: t("delete") })) bulk("delete", ids());
      }, "btn danger"));
  }

  function renderList() {
    renderCounts();
    renderBulk();
    const rows = state.rows;  // every filter is applied by the gateway, over the whole pool
    const all = h("input", { type: "checkbox", "aria-label": t("select_all"),
      checked: rows.length > 0 && rows.every((r) => state.selected.has(r.id)),
      onchange: (e) => { for (const r of rows) e.target.checked ? state.selected.add(r.id) : state.selected.delete(r.id); renderList(); } });
    const columns = [
      { label: all, class: "check", cell: (a) => h("input", { type: "checkbox", "aria-label": t("select_account", { name: a.masked }),
        checked: state.selected.has(a.id),
        onchange: (e) => { e.target.checked ? state.selected.add(a.id) : state.selected.delete(a.id); renderBulk(); } }) },
      { label: t("token"), cell: (a) => h("button", { class: "link mono", type: "button", onclick: () => detail(a.id) }, a.masked) },
      { label: t("tier"), cell: (a) => badge(a.tier, a.tier) },
      { label: t("state"), cell: (a) => h("span", { title: a.status.reason || null }, badge(t(`status_${a.status.state}`), a.status.state)) },
      { label: t("quota"), cell: (a) => quotaSummary(a) },
      { label: t("tags"), cell: (a) => (a.tags || []).map((tag) => badge(tag, "tag")) },
      { label: t("requests"), class: "num", cell: (a) => `${num(a.requests)} / ${num(a.failures)}` },
      { label: t("last_used"), cell: (a) => ago(a.last_used_at) },
      { label: h("span", { class: "sr-only" }, t("actions")), cell: (a) => h("button", { class: "btn small", type: "button",
        onclick: (e) => testOne(a.id, e.currentTarget) }, t("test")) },
    ];
    clear(listEl, table(columns, rows, { caption: t("page_accounts"), empty: t("no_accounts") }));
    moreBtn.hidden = !state.next;
  }

  async function bulk(action, ids) {
    try {
      const answer = await api(`/admin/tokens/${action}`, { method: "POST", json: { ids } });
      toast(t(`done_${action}`, { n: answer.updated ?? answer.deleted ?? ids.length }));
      await load(true);
    } catch (error) {
      toast(error.message, "error");
    }
  }

  async function refreshJob(ids) {
    const bar = progressBar(t("refreshing_quota"));
    clear(jobEl, h("div", { class: "card inset" }, h("strong", {}, t("refreshing_quota")), bar.el));
    bar.set(0, ids ? ids.length : 0, t("starting"));
    try {
      let job = await api("/admin/tokens/refresh", { method: "POST", json: ids ? { ids } : {} });
      for (;;) {
        bar.set(job.done + job.errors, job.total, job.errors ? `(${t("errors")}: ${job.errors})` : "");
        if (job.status === "done") break;
        await sleep(250);
        job = await api(`/admin/refresh/${encodeURIComponent(job.job_id)}`);
      }
      clear(jobEl, h("p", { class: job.errors ? "warn" : "ok", role: "status" },
        t("refresh_done", { done: job.done, total: job.total, errors: job.errors }), job.last_error ? ` — ${job.last_error}` : ""));
      await load(true);
    } catch (error) {
      clear(jobEl, errorBox(error));
    }
  }

  function tagDialog(ids) {
    const input = h("input", { type: "text", placeholder: "team-a, backup" });
    const mode = h("select", {}, h("option", { value: "add" }, t("tags_add")), h("option", { value: "set" }, t("tags_replace")));
    const msg = h("div", { "aria-live": "polite" });
    const save = h("button", { class: "btn primary", type: "button", onclick: async () => {
      const given = input.value.split(",").map((s) => s.trim()).filter(Boolean);
      save.disabled = true;
      try {
        for (const accountId of ids) {
          const row = state.rows.find((r) => r.id === accountId);
          const next = mode.value === "add" ? [...new Set([...(row?.tags || []), ...given])] : given;
          await api(`/admin/tokens/${encodeURIComponent(accountId)}`, { method: "PATCH", json: { tags: next } });
        }
        d.close();
        toast(t("tags_saved"));
        await load(true);
      } catch (error) {
        clear(msg, errorBox(error));
        save.disabled = false;
      }
    } }, t("save"));
    const d = dialog(t("tag_n_accounts", { n: ids.length }), h("div", {}, field(t("tags_comma"), input), field(t("mode"), mode), msg),
      { actions: [save] });
    input.focus();
  }

  async function testOne(accountId, button) {
    if (button) button.disabled = true;
    try {
      const answer = await api(`/admin/tokens/${encodeURIComponent(accountId)}/test`, { method: "POST" });
      if (answer.ok) toast(t("test_ok", { tier: answer.account.tier }));
      else toast(`${t("test_failed")}: ${answer.error.message}`, "error");
      await load(true);
      return answer;
    } catch (error) {
      toast(error.message, "error");
    } finally {
      if (button) button.disabled = false;
    }
  }

  async function detail(accountId) {
    let a;
    try { a = await api(`/admin/tokens/${encodeURIComponent(accountId)}`); } catch (error) { toast(error.message, "error"); return; }
    const note = h("textarea", { rows: 2, maxlength: 500 }, a.note || "");
    note.value = a.note || "";
    const tagsIn = h("input", { type: "text", value: (a.tags || []).join(", ") });
    const conc = h("input", { type: "number", min: 0, max: 64, value: a.concurrency ?? 0 });
    const msg = h("div", { "aria-live": "polite" });
    const quotaRows = [...Object.entries(a.quota || {}), ...Object.entries(a.media || {})];
    const content = h("div", { class: "stack" },
      h("dl", { class: "props" },
        prop(t("token"), h("span", { class: "mono" }, a.masked)), prop("ID", h("span", { class: "mono" }, a.id)),
        prop(t("tier"), badge(a.tier, a.tier)), prop(t("state"), [badge(t(`status_${a.status.state}`), a.status.state), " ",
          a.status.reason, a.status.until ? ` (${t("until")} ${when(a.status.until)})` : ""]),
        prop(t("encrypted"), a.encrypted ? t("yes") : t("no")),
        prop(t("requests"), `${num(a.requests)} (${t("failed")} ${num(a.failures)}, ${t("lost")} ${num(a.lost)})`),
        prop(t("in_flight"), num(a.in_flight)), prop(t("created"), when(a.created_at)), prop(t("last_used"), when(a.last_used_at)),
        prop(t("quota_refreshed"), when(a.quota_refreshed_at)),
        prop(t("last_error"), a.last_error ? [a.last_error, " · ", ago(a.last_error_at)] : "—")),
      table([
        { label: t("mode"), cell: (r) => r[0] },
        { label: t("remaining"), class: "num", cell: (r) => `${num(r[1].remaining)} / ${num(r[1].total)}` },
        { label: t("resets_at"), cell: (r) => when(r[1].resets_at) },
      ], quotaRows, { caption: t("quota") }),
      field(t("note"), note), field(t("tags_comma"), tagsIn), field(t("concurrency"), conc, t("concurrency_hint")), msg);
    const d = dialog(`${t("account")} ${a.masked}`, content, { wide: true, actions: [
      h("button", { class: "btn", type: "button", onclick: async (e) => {
        const answer = await testOne(a.id, e.currentTarget);
        if (answer) clear(msg, answer.ok ? h("p", { class: "ok" }, t("test_ok", { tier: answer.account.tier }))
          : errorBox(answer.error.message));
      } }, t("test")),
      h("button", { class: "btn primary", type: "button", onclick: async () => {
        try {
          await api(`/admin/tokens/${encodeURIComponent(a.id)}`, { method: "PATCH", json: {
            note: note.value, tags: tagsIn.value.split(",").map((s) => s.trim()).filter(Boolean), concurrency: Number(conc.value) || 0 } });
          toast(t("saved"));
          d.close();
          load(true);
        } catch (error) {
          clear(msg, errorBox(error));
        }
      } }, t("save"))] });
  }

  async function exportTokens() {
    if (!(await confirmDialog(t("export_confirm"), { ok: t("export") }))) return;
    try {
      const text = await api("/admin/tokens/export", { text: true });
      download("grok-tokens.txt", new Blob([text], { type: "text/plain" }));
    } catch (error) {
      toast(error.message, "error");
    }
  }

  load(true);
  return null;
}

const prop = (label, value) => [h("dt", {}, label), h("dd", {}, value)];

function quotaSummary(a) {
  const parts = Object.entries(a.quota || {}).filter(([, q]) => q.total !== null && q.total !== undefined);
  if (!parts.length) return h("span", { class: "muted" }, t("unknown"));
  return h("span", { class: "quota" }, parts.map(([mode, q]) =>
    h("span", { class: q.remaining === 0 ? "q empty" : "q", title: q.resets_at ? `${t("resets_at")} ${when(q.resets_at)}` : null },
      `${mode} ${num(q.remaining)}/${num(q.total)}`)));
}

function importReport(r) {
  return h("div", { class: "report", role: "status" },
    h("p", { class: r.added ? "ok" : "warn" }, t("import_result", { added: r.added, skipped: r.skipped })),
    r.encrypted ? null : h("p", { class: "warn" }, t("stored_plaintext")),
    r.details.skipped.length ? h("ul", {}, r.details.skipped.slice(0, 20).map((s) => h("li", {}, h("span", { class: "mono" }, s.masked), ": ", s.reason))) : null);
}
