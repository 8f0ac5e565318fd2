// The playground's text box: a character counter against the server's limit, emotion-tag
// buttons that insert at the cursor, and Ctrl/Cmd+Enter to speak.

import { fetchConfig } from "./api.js";

const EMOTION_TAGS = ["laugh", "chuckle", "sigh", "cough", "sniffle", "groan", "yawn", "gasp"];

export class TextBox {
  // el: {text, count, tags} elements; onSubmit: Ctrl/Cmd+Enter in the box.
  constructor(el, { onSubmit }) {
    this.el = el;
    this.maxChars = 100000; // the documented default until /config says otherwise
    for (const tag of EMOTION_TAGS) el.tags.append(this.#tagButton(tag));
    el.text.addEventListener("input", () => this.updateCount());
    el.text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        onSubmit();
      }
    });
    this.updateCount();
  }

  get value() {
    return this.el.text.value;
  }

  focus() {
    this.el.text.focus();
  }

  // The server's max_input_chars; on failure the counter keeps the default limit.
  async loadLimit() {
    try {
      const cfg = await fetchConfig();
      const limit = cfg.max_input_chars ?? cfg.settings?.max_input_chars ?? cfg.config?.max_input_chars;
      if (Number.isFinite(limit)) this.maxChars = limit;
    } catch {
      // keep the default
    }
    this.updateCount();
  }

  updateCount() {
    const n = this.el.text.value.length;
    const max = this.maxChars;
    this.el.count.textContent = `${n.toLocaleString("en")} / ${max.toLocaleString("en")} characters`;
    this.el.count.dataset.over = n > max ? "true" : "false";
  }

  insertTag(tag) {
    const t = this.el.text;
    const start = t.selectionStart ?? t.value.length;
    const end = t.selectionEnd ?? start;
    const before = t.value.slice(0, start);
    const pad = before && !/\s$/.test(before) ? " " : "";
    t.setRangeText(`${pad}<${tag}> `, start, end, "end");
    t.focus();
    this.updateCount();
  }

  #tagButton(tag) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "tag";
    b.textContent = `<${tag}>`;
    b.setAttribute("aria-label", `Insert ${tag} tag`);
    // Keep the textarea's cursor: a mouse press on the button would otherwise blur it first.
    b.addEventListener("mousedown", (e) => e.preventDefault());
    b.addEventListener("click", () => this.insertTag(tag));
    return b;
  }
}
