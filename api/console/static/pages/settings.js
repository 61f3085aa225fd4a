// Settings: the run-time settings with the value in force and where it comes from (default, environment or
// store); a bad value shows the gateway's own validation message next to its field.
import { h, clear, api, errorBox, toast, badge } from "g2a/core.js";
import { t } from "g2a/i18n.js";

export default function settings(main) {
  const body = h("div", {});
  const msg = h("div", { "aria-live": "assertive" });
  const controls = new Map();
  clear(main, h("div", { class: "page-head" }, h("h1", {}, t("page_settings"))), msg, body);

  function input(s) {
    const common = { id: `set-${s.name}`, name: s.name, "aria-describedby": `set-${s.name}-desc set-${s.name}-err` };
    if (s.type === "boolean") return h("input", { ...common, type: "checkbox", checked: !!s.value });
    if (s.choices?.length) {
      return h("select", common, s.choices.map((c) => h("option", { value: c, selected: String(s.value) === String(c) }, String(c))));
    }
    if (s.type === "number" || s.type === "integer") {
      return h("input", { ...common, type: "number", step: s.type === "number" ? "any" : "1",
        min: s.minimum ?? null, max: s.maximum ?? null, value: s.value ?? "" });
    }
    return h("input", { ...common, type: "text", value: display(s.value), spellcheck: "false" });
  }

  // Lists as the environment writes them (a,b), mappings as JSON: what goes back is validated like the env var.
  const display = (v) => (Array.isArray(v) ? v.join(",") : v && typeof v === "object" ? JSON.stringify(v) : String(v ?? ""));

  const read = (s, el) => {
    if (el.type === "checkbox") return el.checked;
    if (el.type === "number") return el.value === "" ? null : Number(el.value);
    return el.value;
  };

  async function load() {
    try {
      render(await api("/admin/settings"));
    } catch (error) {
      clear(body, error.status === 404 ? h("p", { class: "muted" }, t("not_available_yet"), " (", error.message, ")") : errorBox(error));
    }
  }

  function render(answer) {
    controls.clear();
    const rows = answer.data.map((s) => {
      const el = input(s);
      controls.set(s.name, { s, el, err: null });
      const err = h("p", { class: "field-error", id: `set-${s.name}-err`, role: "alert" });
      controls.get(s.name).err = err;
      return h("div", { class: "setting" },
        h("div", { class: "setting-head" }, h("label", { for: el.id, class: "mono" }, s.name), badge(t(`source_${s.source}`), `src-${s.source}`)),
        h("p", { class: "muted", id: `set-${s.name}-desc` }, s.description,
          s.env_value !== null && s.env_value !== undefined && s.env_value !== "" ? ` · ${t("env_value")}: ${JSON.stringify(s.env_value)}` : ""),
        h("div", { class: "row" }, el, s.source === "store"
          ? h("button", { class: "btn small", type: "button", onclick: () => save({ [s.name]: null }) }, t("reset_to_env")) : null),
        err);
    });
    clear(body, h("form", { class: "card stack", novalidate: true, onsubmit: (e) => { e.preventDefault(); saveChanged(); } },
      h("p", { class: "muted" }, t("settings_intro", { version: answer.version ?? "—" })), rows,
      h("div", { class: "row sticky-actions" }, h("button", { class: "btn primary", type: "submit" }, t("save")))));
  }

  function saveChanged() {
    const values = {};
    for (const [name, { s, el }] of controls) {
      const v = read(s, el);
      if (display(v) !== display(s.value)) values[name] = v;
    }
    if (!Object.keys(values).length) { toast(t("no_changes")); return; }
    save(values);
  }

  async function save(values) {
    clear(msg);
    for (const { err } of controls.values()) err.textContent = "";
    try {
      render(await api("/admin/settings", { method: "PUT", json: { values } }));
      toast(t("saved"));
    } catch (error) {
      const target = error.param && controls.get(error.param);
      if (target) {
        target.err.textContent = error.message;
        target.el.focus();
      } else {
        clear(msg, errorBox(error));
      }
    }
  }

  load();
  return null;
}
