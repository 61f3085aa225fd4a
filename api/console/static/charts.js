// Two small SVG charts (lines over time, horizontal bars). Colours come from CSS classes, so themes apply.
import { h, num } from "g2a/core.js";

const W = 600;
const H = 180;
const PAD = { l: 48, r: 8, t: 12, b: 26 };

// lineChart({title, points: [{t, ...}], series: [{key, label, cls}], format: (t) => label})
export function lineChart({ title, points, series, format }) {
  const max = Math.max(4, ...points.flatMap((p) => series.map((s) => Number(p[s.key]) || 0)));
  const n = Math.max(points.length - 1, 1);
  const x = (i) => PAD.l + ((W - PAD.l - PAD.r) * i) / n;
  const y = (v) => H - PAD.b - ((H - PAD.t - PAD.b) * v) / max;
  const grid = [0, 0.5, 1].map((f) => [
    h("svg:line", { x1: PAD.l, x2: W - PAD.r, y1: y(max * f), y2: y(max * f), class: "grid" }),
    h("svg:text", { x: PAD.l - 4, y: y(max * f) + 4, class: "axis", "text-anchor": "end" }, num(Math.round(max * f))),
  ]);
  const ticks = points.length
    ? [0, Math.floor(points.length / 2), points.length - 1].map((i) =>
      h("svg:text", { x: x(i), y: H - 6, class: "axis", "text-anchor": i === 0 ? "start" : i === points.length - 1 ? "end" : "middle" },
        format(points[i].t)))
    : [];
  const lines = series.map((s) => h("svg:polyline", {
    class: `series ${s.cls}`, fill: "none",
    points: points.map((p, i) => `${x(i).toFixed(1)},${y(Number(p[s.key]) || 0).toFixed(1)}`).join(" "),
  }));
  const total = (s) => points.reduce((a, p) => a + (Number(p[s.key]) || 0), 0);
  const summary = series.map((s) => `${s.label}: ${num(total(s))}`).join(", ");
  return h("figure", { class: "chart" },
    h("figcaption", {}, title,
      h("span", { class: "legend" }, series.map((s) => h("span", { class: `key ${s.cls}` }, s.label)))),
    h("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}: ${summary}`, preserveAspectRatio: "none" },
      grid, ticks, lines));
}

// barChart({title, rows: [[label, value]]})
export function barChart({ title, rows, empty }) {
  const max = Math.max(1, ...rows.map((r) => r[1]));
  const row = 22;
  const height = Math.max(row, rows.length * row);
  const body = rows.length
    ? rows.map(([label, value], i) => [
      h("svg:text", { x: 0, y: i * row + 16, class: "axis label" }, String(label).slice(0, 24)),
      h("svg:rect", { x: 200, y: i * row + 4, height: 14, width: Math.max(1, (360 * value) / max), class: "bar", rx: 2 }),
      h("svg:text", { x: 204 + (360 * value) / max, y: i * row + 16, class: "axis" }, num(value)),
    ])
    : [h("svg:text", { x: 0, y: 16, class: "axis" }, empty || "—")];
  return h("figure", { class: "chart" }, h("figcaption", {}, title),
    h("svg:svg", { viewBox: `0 0 ${W} ${height}`, role: "img",
      "aria-label": `${title}: ${rows.map((r) => `${r[0]} ${r[1]}`).join(", ") || empty || "—"}` }, body));
}
