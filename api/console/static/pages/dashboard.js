// Dashboard: pool health (one /admin/summary round trip, falling back to /admin/pool), requests, errors, latency,
// top models and keys over 24 hours or 30 days. Refreshes every 30 s while the tab is visible.
import { h, clear, api, poll, num, pct, ago, errorBox, badge, bytes } from "g2a/core.js";
import { t, lang } from "g2a/i18n.js";
import { lineChart, barChart } from "g2a/charts.js";

export default function dashboard(main) {
  let range = "24h";
  const body = h("div", { class: "stack" });
  const rangeSelect = h("select", { "aria-label": t("range"), onchange: (e) => { range = e.target.value; refresh(); } },
    h("option", { value: "24h" }, t("last_24h")), h("option", { value: "30d" }, t("last_30d")));
  clear(main, h("div", { class: "page-head" }, h("h1", {}, t("page_dashboard")), rangeSelect), body);

  async function refresh() {
    let summary = null;
    let stats = null;
    let pool;
    try {
      summary = await api("/admin/summary");
      pool = summary.pool;
    } catch (error) {
      if (error.status !== 404) { clear(body, errorBox(error)); return; }
      pool = await api("/admin/pool");
    }
    try {
      // The summary already carries the last 24 hours: only the 30-day view costs another call.
      stats = range === "24h" && summary?.last_24h ? summary.last_24h : await api(`/admin/stats?range=${range}`);
    } catch (error) {
      stats = { error };
    }
    let history = null;
    try {
      history = (await api(`/admin/pool/history?range=${range}`)).points;
    } catch { /* older gateways: no pool history */ }
    clear(body, poolCards(pool, summary), egress(pool.egress), statsView(stats, range), historyView(history, range));
  }
  return poll(refresh, 30000);
}

function card(label, value, extra) {
  return h("div", { class: "card stat" }, h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value" }, value), extra ? h("div", { class: "stat-extra" }, extra) : null);
}

function poolCards(pool, summary) {
  const status = pool.by_status || {};
  const cards = [
    card(t("accounts"), num(pool.total),
      Object.entries(pool.by_tier || {}).map(([tier, n]) => badge(`${tier} ${n}`, tier))),
    card(t("state"), num(status.active || 0) + " " + t("status_active"),
      ["cooling", "invalid", "disabled"].map((s) => badge(`${t(`status_${s}`)} ${status[s] || 0}`, s))),
    card(t("in_flight"), num(pool.in_flight)),
  ];
  if (summary?.today) {
    const today = summary.today;
    cards.push(card(t("requests_today"), num(today.requests), `${t("success_rate")} ${pct(today.ok, today.requests)}`));
  }
  if (summary?.keys) cards.push(card(t("page_keys"), num(summary.keys.enabled), `${t("total")} ${num(summary.keys.total)}`));
  if (summary?.media) cards.push(card(t("page_media"), num(summary.media.count), bytes(summary.media.bytes)));
  const remaining = Object.entries(pool.remaining || {});
  return h("section", { "aria-label": t("pool_health") },
    h("div", { class: "cards" }, cards),
    h("h2", {}, t("remaining_quota")),
    h("div", { class: "cards small" }, remaining.map(([mode, n]) =>
      card(mode, num(n), pool.unknown_quota?.[mode] ? `${t("unknown")}: ${pool.unknown_quota[mode]}` : null))),
    pool.plaintext_accounts ? h("p", { class: "warn" }, t("plaintext_warning", { n: pool.plaintext_accounts })) : null);
}

function egress(e) {
  if (!e || (!e.cloudflare && !e.anti_bot)) return null;
  return h("section", { class: "card warn-card", role: "alert" },
    h("h2", {}, t("egress_problems")),
    h("p", {}, `Cloudflare: ${e.cloudflare} · anti-bot: ${e.anti_bot} · ${ago(e.last_at)}`),
    e.last_message ? h("p", { class: "mono" }, e.last_message) : null,
    h("p", {}, t("egress_help")),
    h("ul", {}, h("li", {}, h("code", {}, "cf_clearance"), " → ", h("code", {}, "GROK_CF_CLEARANCE")),
      h("li", {}, t("user_agent"), " → ", h("code", {}, "GROK_USER_AGENT")),
      h("li", {}, h("code", {}, "x-statsig-id"), " → ", h("code", {}, "GROK_STATSIG_ID"))));
}

// Daily buckets are UTC days (the ledger's day keys): a day is labelled with its UTC date, or west of UTC every
// bucket would carry the previous day's date (its midnight is the evening before there).
function timeFormat(range) {
  const daily = range === "30d";
  return (ts) => new Date(ts * 1000).toLocaleString(lang() === "zh" ? "zh-CN" : "en-US",
    daily ? { month: "numeric", day: "numeric", timeZone: "UTC" } : { hour: "2-digit", minute: "2-digit" });
}

function historyView(points, range) {
  if (!points?.length) return null;
  return h("section", { "aria-label": t("pool_history") }, h("div", { class: "charts" },
    lineChart({ title: t("pool_history"), points, format: timeFormat(range), series: [
      { key: "active", label: t("status_active"), cls: "s1" }, { key: "cooling", label: t("status_cooling"), cls: "s3" },
      { key: "invalid", label: t("status_invalid"), cls: "s2" }] })));
}

function statsView(stats, range) {
  if (stats.error) {
    return h("section", {}, h("h2", {}, t("traffic")),
      h("p", { class: "muted" }, stats.error.status === 404 ? t("not_available_yet") : stats.error.message));
  }
  const fmt = timeFormat(stats.range || range);
  const buckets = stats.buckets || [];
  const errors = {};
  for (const b of buckets) for (const [k, v] of Object.entries(b.errors || {})) errors[k] = (errors[k] || 0) + v;
  const top = (m) => Object.entries(m || {}).map(([k, v]) => [k, v.requests || 0]).sort((a, b) => b[1] - a[1]).slice(0, 8);
  const totals = stats.totals || {};
  return h("section", { "aria-label": t("traffic") },
    h("h2", {}, t("traffic")),
    h("div", { class: "cards small" },
      card(t("requests"), num(totals.requests)), card(t("success_rate"), pct(totals.ok, totals.requests)),
      card(t("tokens"), num((totals.prompt_tokens || 0) + (totals.completion_tokens || 0)))),
    h("div", { class: "charts" },
      lineChart({ title: t("requests"), points: buckets, format: fmt, series: [
        { key: "requests", label: t("requests"), cls: "s1" }, { key: "failed", label: t("failed"), cls: "s2" }] }),
      lineChart({ title: t("latency"), points: buckets, format: fmt, series: [
        { key: "latency_mean_ms", label: t("mean_ms"), cls: "s1" }, { key: "latency_p95_ms", label: "p95 ms", cls: "s3" }] }),
      barChart({ title: t("errors_by_kind"), rows: Object.entries(errors).sort((a, b) => b[1] - a[1]), empty: t("no_errors") }),
      barChart({ title: t("top_models"), rows: top(stats.by_model), empty: t("nothing_here") }),
      barChart({ title: t("top_keys"), rows: top(stats.by_key), empty: t("nothing_here") })));
}
