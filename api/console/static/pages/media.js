// Media gallery: generated images and videos (preview, play, download, delete), storage used, cleanup.
import { h, clear, api, field, errorBox, toast, confirmDialog, bytes, when, dialog } from "g2a/core.js";
import { t } from "g2a/i18n.js";

export default function media(main) {
  const kind = h("select", { onchange: () => load(true) }, h("option", { value: "" }, t("all")),
    h("option", { value: "image" }, t("images")), h("option", { value: "video" }, t("videos")));
  const usage = h("p", { class: "muted", role: "status" });
  const grid = h("div", { class: "gallery" });
  const more = h("button", { class: "btn", type: "button", hidden: true, onclick: () => load(false) }, t("load_more"));
  let next = null;
  const cleanup = h("button", { class: "btn", type: "button", onclick: async () => {
    if (!(await confirmDialog(t("cleanup_confirm")))) return;
    try {
      const r = await api("/admin/media/cleanup", { method: "POST" });
      toast(t("cleanup_done", { n: r.deleted, size: bytes(r.freed_bytes) }));
      load(true);
    } catch (error) { toast(error.message, "error"); }
  } }, t("cleanup"));
  clear(main, h("div", { class: "page-head" }, h("h1", {}, t("page_media")), h("div", { class: "row" }, field(t("kind"), kind), cleanup)),
    usage, grid, more);

  async function load(reset) {
    try {
      const params = new URLSearchParams({ limit: "48" });
      if (kind.value) params.set("kind", kind.value);
      if (!reset && next) params.set("cursor", next);
      const page = await api(`/admin/media?${params}`);
      if (reset) clear(grid);
      next = page.next_cursor;
      usage.textContent = t("media_usage", { n: page.count ?? page.data.length, size: bytes(page.bytes) });
      if (reset && !page.data.length) grid.append(h("p", { class: "muted" }, t("no_media")));
      // A video's poster is its tile's picture, not a tile of its own (deleting the video deletes it too).
      for (const item of page.data) if (!(item.source || "").startsWith("videos/poster")) grid.append(tile(item));
      more.hidden = !next;
    } catch (error) {
      clear(grid, error.status === 404 ? h("p", { class: "muted" }, t("not_available_yet"), " (", error.message, ")") : errorBox(error));
    }
  }

  function tile(item) {
    const label = item.prompt || item.id;
    const preview = item.kind === "video"
      ? h("video", { src: item.url, poster: item.poster_url || null, controls: true, preload: "none", "aria-label": label })
      : h("button", { class: "thumb-btn", type: "button", "aria-label": t("open_image", { name: label }),
        onclick: () => dialog(label, h("img", { src: item.url, alt: label, class: "full" }), { wide: true }) },
      h("img", { src: item.url, alt: label, loading: "lazy" }));
    const el = h("figure", { class: "tile" }, preview,
      h("figcaption", {}, h("span", { class: "clip", title: label }, label),
        h("small", { class: "muted" }, `${bytes(item.bytes)} · ${when(item.created_at)}`),
        h("span", { class: "row" },
          h("a", { class: "btn small", href: item.url, download: "" }, t("download")),
          h("button", { class: "btn small danger", type: "button", onclick: async () => {
            if (!(await confirmDialog(t("delete_media_confirm"), { danger: true, ok: t("delete") }))) return;
            try {
              await api(`/admin/media/${encodeURIComponent(item.id)}`, { method: "DELETE" });
              el.remove();
              toast(t("deleted"));
            } catch (error) { toast(error.message, "error"); }
          } }, t("delete")))));
    return el;
  }

  load(true);
  return null;
}
