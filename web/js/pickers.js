// The playground's voice and backend pickers: the active backend's voices grouped by language,
// every backend with its health, and switching the server's active backend.

import { fetchAdapters, fetchVoices, languageName, setBackend } from "./api.js";

function voiceOption(v) {
  const name = v.name || v.id;
  const bits = [v.language && v.language !== name ? v.language : null, v.gender].filter(Boolean);
  const opt = new Option(bits.length ? `${name} (${bits.join(", ")})` : name, v.id);
  if (v.description) opt.title = v.description;
  return opt;
}

export class Pickers {
  // el: {voice, backend, backendStatus, degraded} elements; onStatus(text, kind) reports to a person.
  constructor(el, { onStatus }) {
    this.el = el;
    this.onStatus = onStatus;
    this.voices = [];
    this.activeBackend = null;
    el.backend.addEventListener("change", () => this.switchBackend());
  }

  // Whether `id` is a stored voice (a clone or preset: it names its own backend).
  isStored(id) {
    return this.voices.some((v) => v.library && v.id === id);
  }

  renderVoices() {
    const chosen = this.el.voice.value;
    const stored = this.voices.filter((v) => v.library);
    const engine = this.voices.filter((v) => !v.library);
    let list = engine.filter((v) => !v.backend || v.backend === this.activeBackend);
    if (!list.length) list = engine;
    const seen = new Set();
    list = list.filter((v) => !seen.has(v.id) && seen.add(v.id)); // one option per voice id
    const groups = new Map();
    for (const v of list) {
      const key = languageName(v.language);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(v);
    }
    const nodes = [new Option("Default voice", "")];
    for (const key of [...groups.keys()].sort((a, b) => a.localeCompare(b, "en"))) {
      const og = document.createElement("optgroup");
      og.label = key;
      og.append(...groups.get(key).map(voiceOption));
      nodes.push(og);
    }
    if (stored.length) {
      const og = document.createElement("optgroup");
      og.label = "Stored voices";
      og.append(...stored.map((v) => new Option(`${v.name} (${v.kind})`, v.id)));
      nodes.push(og);
    }
    this.el.voice.replaceChildren(...nodes);
    this.el.voice.value = [...list, ...stored].some((v) => v.id === chosen) ? chosen : "";
  }

  async loadVoices() {
    try {
      this.voices = await fetchVoices();
      this.renderVoices();
    } catch (e) {
      this.onStatus(`Could not load voices: ${e.message}`, "error");
    }
  }

  renderAdapters(data) {
    const el = this.el;
    this.activeBackend = data.active;
    const opts = (data.adapters || []).map((a) => {
      const label = a.ready ? a.name : `${a.name} (unavailable)`;
      const opt = new Option(label, a.name);
      opt.disabled = !a.ready && a.name !== data.active;
      if (!a.ready && a.reason) opt.title = a.reason;
      return opt;
    });
    el.backend.replaceChildren(...opts);
    el.backend.value = data.active;
    const active = (data.adapters || []).find((a) => a.name === data.active);
    if (active) {
      el.backendStatus.textContent = active.ready ? "ready" : `not ready: ${active.reason || "unknown reason"}`;
      el.backendStatus.dataset.kind = active.ready ? "ok" : "error";
      el.degraded.hidden = !active.degraded;
    }
  }

  async loadAdapters() {
    try {
      this.renderAdapters(await fetchAdapters());
    } catch (e) {
      this.el.backendStatus.textContent = `could not load backends: ${e.message}`;
      this.el.backendStatus.dataset.kind = "error";
    }
  }

  async switchBackend() {
    const name = this.el.backend.value;
    this.el.backend.disabled = true;
    try {
      await setBackend(name);
      await this.loadAdapters();
      await this.loadVoices(); // the voice list is the active backend's
      this.onStatus(`Backend switched to ${name}.`);
    } catch (e) {
      this.onStatus(`Could not switch to ${name}: ${e.message}`, "error");
      await this.loadAdapters();
    } finally {
      this.el.backend.disabled = false;
    }
  }
}
