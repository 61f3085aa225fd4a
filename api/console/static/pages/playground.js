// Playground: the gateway's own public API from the browser (the console session, or the public key in public
// mode). Chat streams through fetch + SSE with reasoning shown apart; images fill a grid as partial images
// arrive; video jobs show progress and play. Chat history stays in this browser (localStorage).
import {
  h, clear, api, authHeaders, field, errorBox, errorMessage, sse, store, fileToDataURL, progressBar, session, id, sleep,
} from "g2a/core.js";
import { t } from "g2a/i18n.js";

const HISTORY = "g2a.chats";
const MAX_CHATS = 20;

export default async function playground(main) {
  const tabs = ["chat", "images", "video"];
  let current = store.get("g2a.pgtab", "chat");
  let stopTab = null;
  const panel = h("div", { role: "tabpanel", id: "pg-panel", tabindex: "0" });
  const keyBox = session.publicMode && !session.authenticated ? publicKeyField() : null;
  const tabList = h("div", { role: "tablist", class: "tabs", "aria-label": t("page_playground"),
    onkeydown: (e) => {
      const i = tabs.indexOf(current);
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        e.preventDefault();
        select(tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length], true);
      }
    } });
  let models = [];
  try {
    models = (await api("/v1/models")).data;
  } catch (error) {
    clear(main, h("h1", {}, t("page_playground")), keyBox, errorBox(error));
    return null;
  }
  clear(main, h("h1", {}, t("page_playground")), keyBox, tabList, panel);

  function select(name, focus) {
    current = name;
    store.set("g2a.pgtab", name);
    clear(tabList, tabs.map((tab) => h("button", { role: "tab", type: "button", id: `tab-${tab}`, "aria-controls": "pg-panel",
      "aria-selected": String(tab === name), tabindex: tab === name ? "0" : "-1", onclick: () => select(tab, true) }, t(`pg_${tab}`))));
    panel.setAttribute("aria-labelledby", `tab-${name}`);
    stopTab?.();
    stopTab = { chat: chatView, images: imagesView, video: videoView }[name](panel, models) || null;
    if (focus) document.getElementById(`tab-${name}`).focus();
  }
  select(tabs.includes(current) ? current : "chat");
  return () => stopTab?.();
}

function publicKeyField() {
  const input = h("input", { type: "password", autocomplete: "off", value: session.publicKey || "",
    onchange: (e) => { session.publicKey = e.target.value.trim() || null; } });
  return h("div", { class: "card inset" }, h("p", {}, t("public_mode_intro")), field(t("public_key"), input, t("public_key_hint")));
}

// fetch() against /v1 with the console's credentials; throws the gateway's own message.
async function v1(path, init = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...init,
    headers: { ...authHeaders(init.method || "GET"), ...(init.headers || {}) } });
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch { /* not JSON */ }
    throw new Error(errorMessage(body, response.status));
  }
  return response;
}

const select = (options, value) => h("select", {}, options.map((o) => h("option", { value: o, selected: o === value }, o)));

// ---- chat -------------------------------------------------------------------------------------------------------
function chatView(panel, models) {
  const chatModels = models.filter((m) => !m.capabilities || (!m.capabilities.images && !m.capabilities.videos)).map((m) => m.id);
  let chats = store.get(HISTORY, []);
  let chat = chats[0] || newChat();
  let controller = null;
  const model = select(chatModels, store.get("g2a.model", chatModels[0]));
  model.addEventListener("change", () => store.set("g2a.model", model.value));
  const system = h("textarea", { rows: 2, placeholder: t("system_prompt_placeholder") });
  const log = h("div", { class: "chat-log", role: "log", "aria-live": "polite", "aria-label": t("conversation") });
  const input = h("textarea", { rows: 3, placeholder: t("chat_placeholder"), required: true,
    onkeydown: (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); } } });
  const attach = h("input", { type: "file", accept: "image/*", multiple: true });
  const attached = h("div", { class: "thumbs" });
  const status = h("div", { class: "muted", role: "status" });
  const send = h("button", { class: "btn primary", type: "submit" }, t("send"));
  const stop = h("button", { class: "btn", type: "button", hidden: true, onclick: () => controller?.abort() }, t("stop"));
  const history = h("select", { onchange: (e) => { chat = chats.find((c) => c.id === e.target.value) || chat; system.value = chat.system || ""; draw(); } });
  let images = [];
  attach.addEventListener("change", async () => {
    images = await Promise.all([...attach.files].map(fileToDataURL));
    clear(attached, images.map((src, i) => h("img", { src, alt: t("attached_image_n", { n: i + 1 }), width: 48, height: 48 })));
  });

  function newChat() { return { id: String(Date.now()), title: "", system: "", messages: [] }; }
  function save() {
    if (!chat.messages.length) return;
    chats = [chat, ...chats.filter((c) => c.id !== chat.id)].slice(0, MAX_CHATS);
    store.set(HISTORY, chats);
  }
  function drawHistory() {
    clear(history, (chats.length ? chats : [chat]).map((c) => h("option", { value: c.id, selected: c.id === chat.id },
      c.title || t("new_chat"))));
  }
  function bubble(m) {
    const parts = [];
    if (m.reasoning) {
      parts.push(h("details", { class: "reasoning", open: m.streaming ? true : null },
        h("summary", {}, t("reasoning")), h("div", { class: "reasoning-text" }, m.reasoning)));
    }
    for (const src of m.images || []) parts.push(h("img", { src, alt: t("attached_image"), class: "msg-img" }));
    parts.push(h("div", { class: "content" }, m.content || (m.streaming ? "…" : "")));
    if (m.error) parts.push(errorBox(m.error));
    return h("div", { class: `msg ${m.role}` }, h("div", { class: "who" }, t(`role_${m.role}`)), parts);
  }
  function draw() {
    drawHistory();
    clear(log, chat.messages.map(bubble));
    log.scrollTop = log.scrollHeight;
  }

  const form = h("form", { class: "chat-form", onsubmit: async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    chat.system = system.value;
    if (!chat.title) chat.title = text.slice(0, 40);
    chat.messages.push({ role: "user", content: text, images });
    const answer = { role: "assistant", content: "", reasoning: "", streaming: true };
    chat.messages.push(answer);
    input.value = "";
    images = [];
    attach.value = "";
    clear(attached);
    draw();
    controller = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    status.textContent = t("streaming");
    const started = performance.now();
    let first = null;
    const last = log.lastElementChild;
    const contentEl = last.querySelector(".content");
    let reasoningEl = null;
    try {
      const messages = [];
      if (chat.system) messages.push({ role: "system", content: chat.system });
      for (const m of chat.messages.slice(0, -1)) {
        if (m.error) continue;
        messages.push(m.images?.length
          ? { role: m.role, content: [{ type: "text", text: m.content }, ...m.images.map((url) => ({ type: "image_url", image_url: { url } }))] }
          : { role: m.role, content: m.content });
      }
      const response = await v1("/v1/chat/completions", { method: "POST", signal: controller.signal,
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({ model: model.value, stream: true, messages, stream_options: { include_usage: true } }) });
      let usage = null;
      for await (const { data } of sse(response)) {
        if (data === "[DONE]") break;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || JSON.stringify(chunk.error));
        if (chunk.usage) usage = chunk.usage;
        const delta = chunk.choices?.[0]?.delta || {};
        if (delta.reasoning_content) {
          answer.reasoning += delta.reasoning_content;
          if (!reasoningEl) {
            const det = h("details", { class: "reasoning", open: true }, h("summary", {}, t("reasoning")), h("div", { class: "reasoning-text" }));
            last.insertBefore(det, contentEl);
            reasoningEl = det.querySelector(".reasoning-text");
          }
          reasoningEl.textContent = answer.reasoning;
        }
        if (delta.content) {
          if (first === null) first = performance.now();
          answer.content += delta.content;
          contentEl.textContent = answer.content;
          log.scrollTop = log.scrollHeight;
        }
      }
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      status.textContent = t("chat_done", { secs, ttft: first ? ((first - started) / 1000).toFixed(2) : "—",
        tokens: usage ? usage.completion_tokens : "—" });
    } catch (error) {
      answer.error = error.name === "AbortError" ? t("stopped") : error.message;
      status.textContent = "";
    } finally {
      answer.streaming = false;
      controller = null;
      send.disabled = false;
      stop.hidden = true;
      save();
      draw();
    }
  } },
  field(t("message"), input, t("send_hint")), h("div", { class: "row" }, field(t("attach_images"), attach), attached),
  h("div", { class: "row" }, send, stop, status));

  panel.replaceChildren(h("div", { class: "chat" },
    h("div", { class: "row wrap" }, field(t("model"), model), field(t("history"), history),
      h("button", { class: "btn", type: "button", onclick: () => { chat = newChat(); system.value = ""; draw(); } }, t("new_chat")),
      h("button", { class: "btn", type: "button", onclick: () => {
        chats = chats.filter((c) => c.id !== chat.id); store.set(HISTORY, chats); chat = chats[0] || newChat(); draw();
      } }, t("delete_chat"))),
    field(t("system_prompt"), system), log, form));
  system.value = chat.system || "";
  draw();
  return () => controller?.abort();
}

// ---- images -----------------------------------------------------------------------------------------------------
const SIZES = ["1024x1024", "1024x1536", "1536x1024", "auto"];

function imagesView(panel, models) {
  const imageModels = models.filter((m) => m.capabilities?.images);
  const genModels = imageModels.filter((m) => m.capabilities.images !== "edit").map((m) => m.id);
  const editModels = imageModels.filter((m) => m.capabilities.images === "edit").map((m) => m.id);
  let controller = null;
  const mode = h("select", { onchange: () => swap() }, h("option", { value: "generate" }, t("generate")), h("option", { value: "edit" }, t("edit")));
  const model = select(genModels.length ? genModels : ["grok-imagine-image"]);
  const prompt = h("textarea", { rows: 3, required: true, placeholder: t("image_prompt_placeholder") });
  const size = select(SIZES, "1024x1024");
  const n = h("input", { type: "number", min: 1, max: 10, value: 2 });
  // Streamed images arrive inline (b64) and are not stored; without streaming they are kept in the media store.
  const keep = h("input", { type: "checkbox", id: id("keep") });
  const source = h("input", { type: "file", accept: "image/*", multiple: true });
  const sourceField = field(t("source_images"), source);
  sourceField.hidden = true;
  const grid = h("div", { class: "image-grid", "aria-live": "polite", "aria-label": t("results") });
  const status = h("div", { role: "status", class: "muted" });
  const go = h("button", { class: "btn primary", type: "submit" }, t("generate"));

  function swap() {
    const edit = mode.value === "edit";
    clear(model, (edit ? editModels : genModels).map((m) => h("option", { value: m }, m)));
    sourceField.hidden = !edit;
    keep.closest("label")?.toggleAttribute("hidden", edit);
    source.required = edit;
    go.textContent = edit ? t("edit") : t("generate");
  }

  function slot(i) {
    let el = grid.querySelector(`[data-index="${i}"]`);
    if (!el) {
      el = h("figure", { class: "slot pending", "data-index": i }, h("div", { class: "spinner", "aria-hidden": "true" }),
        h("figcaption", {}, t("image_n", { n: i + 1 })));
      grid.append(el);
    }
    return el;
  }
  function show(i, src, done, caption) {
    const el = slot(i);
    el.classList.toggle("pending", !done);
    el.classList.toggle("partial", !done);
    clear(el, h("img", { src, alt: caption || t("image_n", { n: i + 1 }), loading: "lazy" }),
      h("figcaption", {}, done ? [t("image_n", { n: i + 1 }), " ", h("a", { href: src, download: `image-${i + 1}.jpg` }, t("download"))]
        : t("partial_image")));
  }

  const form = h("form", { class: "stack", onsubmit: async (e) => {
    e.preventDefault();
    if (controller) return;
    controller = new AbortController();
    go.disabled = true;
    clear(grid);
    const count = Math.max(1, Math.min(10, Number(n.value) || 1));
    const started = performance.now();
    status.textContent = t("working");
    try {
      if (mode.value === "generate" && keep.checked) {
        for (let i = 0; i < count; i++) slot(i);
        const answer = await (await v1("/v1/images/generations", { method: "POST", signal: controller.signal,
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ model: model.value, prompt: prompt.value, n: count, size: size.value, response_format: "url" }) })).json();
        answer.data.forEach((d, i) => show(i, d.url || `data:image/jpeg;base64,${d.b64_json}`, true, d.revised_prompt));
        for (const el of grid.querySelectorAll(".slot.pending")) clear(el, h("figcaption", {}, t("no_image")));
      } else if (mode.value === "generate") {
        for (let i = 0; i < count; i++) slot(i);
        const response = await v1("/v1/images/generations", { method: "POST", signal: controller.signal,
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify({ model: model.value, prompt: prompt.value, n: count, size: size.value, stream: true, partial_images: 2 }) });
        let got = 0;
        for await (const { event, data } of sse(response)) {
          const ev = JSON.parse(data);
          if (ev.error || event === "error") throw new Error(ev.error?.message || t("failed"));
          if (ev.type === "image_generation.partial_image") show(ev.image_index ?? 0, `data:image/jpeg;base64,${ev.b64_json}`, false);
          if (ev.type === "image_generation.completed") {
            got++;
            show(ev.image_index ?? got - 1, `data:image/${ev.output_format || "jpeg"};base64,${ev.b64_json}`, true, ev.revised_prompt);
            status.textContent = t("images_progress", { done: got, total: count });
          }
        }
        for (const el of grid.querySelectorAll(".slot.pending")) clear(el, h("figcaption", {}, t("no_image")));
      } else {
        const body = new FormData();
        body.append("model", model.value);
        body.append("prompt", prompt.value);
        body.append("n", "1");
        if (size.value !== "auto") body.append("size", size.value);
        for (const f of source.files) body.append("image[]", f, f.name);
        slot(0);
        const answer = await (await v1("/v1/images/edits", { method: "POST", body, signal: controller.signal })).json();
        answer.data.forEach((d, i) => show(i, d.url || `data:image/jpeg;base64,${d.b64_json}`, true, d.revised_prompt));
      }
      status.textContent = t("took_secs", { secs: ((performance.now() - started) / 1000).toFixed(1) });
    } catch (error) {
      status.textContent = "";
      grid.prepend(errorBox(error.name === "AbortError" ? t("stopped") : error.message));
      for (const el of grid.querySelectorAll(".slot.pending")) el.remove();
    } finally {
      controller = null;
      go.disabled = false;
    }
  } },
  h("div", { class: "row wrap" }, field(t("mode"), mode), field(t("model"), model), field(t("size"), size), field(t("count"), n)),
  field(t("prompt"), prompt), sourceField,
  h("label", { class: "check", for: keep.id }, keep, t("keep_in_gallery")), h("div", { class: "row" }, go, status));
  panel.replaceChildren(form, grid);
  swap();
  return () => controller?.abort();
}

// ---- video ------------------------------------------------------------------------------------------------------
const VIDEO_SIZES = ["480x854", "854x480", "480x720", "720x480", "480x480", "720x1280", "1280x720", "720x720"];

function videoView(panel, models) {
  const videoModels = models.filter((m) => m.capabilities?.videos).map((m) => m.id);
  let stopped = false;
  let objectUrl = null;
  const model = select(videoModels.length ? videoModels : ["grok-imagine-video"]);
  const prompt = h("textarea", { rows: 3, required: true, placeholder: t("video_prompt_placeholder") });
  const seconds = h("input", { type: "number", min: 1, max: 30, value: 6 });
  const size = select(VIDEO_SIZES, "480x854");
  const image = h("input", { type: "file", accept: "image/*" });
  const out = h("div", { class: "stack", "aria-live": "polite" });
  const go = h("button", { class: "btn primary", type: "submit" }, t("create_video"));
  const form = h("form", { class: "stack", onsubmit: async (e) => {
    e.preventDefault();
    go.disabled = true;
    const bar = progressBar(t("video_progress"));
    const started = Date.now();
    const tick = setInterval(() => bar.set(0, 0, t("elapsed_secs", { secs: Math.round((Date.now() - started) / 1000) })), 1000);
    clear(out, bar.el);
    bar.set(0, 0, t("submitting"));
    try {
      const body = { model: model.value, prompt: prompt.value, seconds: String(seconds.value), size: size.value };
      if (image.files[0]) body.input_reference = await fileToDataURL(image.files[0]);
      let job = await (await v1("/v1/videos", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body) })).json();
      while (!stopped && (job.status === "queued" || job.status === "in_progress")) {
        clearInterval(tick);
        bar.set(job.progress || 0, 100, `${job.status} ${job.progress || 0}%`);
        await sleep(2000);
        job = await (await v1(`/v1/videos/${encodeURIComponent(job.id)}`)).json();
      }
      clearInterval(tick);
      if (job.status !== "completed") throw new Error(job.error?.message || job.status);
      bar.set(100, 100, t("downloading"));
      const blob = await (await v1(`/v1/videos/${encodeURIComponent(job.id)}/content`)).blob();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(blob);
      const vid = id("video");
      clear(out, h("video", { id: vid, src: objectUrl, controls: true, playsinline: true, class: "player", "aria-label": prompt.value }),
        h("p", {}, h("a", { href: objectUrl, download: `${job.id}.mp4` }, t("download")), ` · ${job.id} · ${job.size} · ${job.seconds}s`));
    } catch (error) {
      clearInterval(tick);
      clear(out, errorBox(error));
    } finally {
      go.disabled = false;
    }
  } },
  h("div", { class: "row wrap" }, field(t("model"), model), field(t("seconds"), seconds), field(t("size"), size)),
  field(t("prompt"), prompt), field(t("start_image"), image, t("start_image_hint")), h("div", { class: "row" }, go));
  panel.replaceChildren(form, out);
  return () => { stopped = true; if (objectUrl) URL.revokeObjectURL(objectUrl); };
}
