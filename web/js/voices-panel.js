// The playground's voices panel: the stored voices (clones and presets) with a sample to play
// and a delete button each; upload a clip to clone, or save the current settings as a preset.
// Stored ids work everywhere a voice is named (every API, the voice picker above).

import { addClone, addPreset, deleteVoice, fetchVoices, speakSample } from "./api.js";

const SAMPLE_TEXT = "Hello! This is how I sound. The quick brown fox jumps over the lazy dog.";

export class VoicesPanel {
  // el: {list, empty, status, cloneForm, cloneName, cloneFile, presetForm, presetName,
  // presetSummary, audio}; settings(): {backend, voice, voiceIsStored, speed} of the Speak form;
  // onChange(): the library changed (the voice picker reloads).
  constructor(el, { settings, onChange = () => {} }) {
    this.el = el;
    this.settings = settings;
    this.onChange = onChange;
    this.voices = [];
    this.sampleUrl = null;
    this.lastSample = null; // {id, ok, backend, bytes, error}, for people and tests
    el.cloneForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.upload();
    });
    el.presetForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.savePreset();
    });
  }

  status(text, kind = "info") {
    this.el.status.textContent = text;
    this.el.status.dataset.kind = kind;
  }

  async load() {
    try {
      this.voices = (await fetchVoices()).filter((v) => v.library);
    } catch (e) {
      this.status(`Could not load the voice library: ${e.message}`, "error");
      return;
    }
    this.render();
  }

  render() {
    const items = this.voices.map((v) => this.item(v));
    this.el.list.replaceChildren(...items);
    this.el.empty.hidden = items.length > 0;
  }

  item(v) {
    const li = document.createElement("li");
    li.className = "stored-voice";
    li.dataset.voiceId = v.id;
    const title = document.createElement("span");
    title.className = "stored-name";
    title.textContent = v.name;
    const kind = document.createElement("span");
    kind.className = `badge ${v.kind === "clone" ? "ok" : ""}`;
    kind.textContent = v.kind;
    const meta = document.createElement("span");
    meta.className = "hint mono";
    meta.textContent = `${v.id}${v.backend ? ` · ${v.backend}` : " · no engine here clones"}`;
    const play = button("Play sample", `Play a sample of ${v.name}`, () => this.playSample(v));
    const del = button("Delete", `Delete ${v.name}`, () => this.remove(v));
    play.className = "play-sample";
    del.className = "delete-voice";
    const actions = document.createElement("span");
    actions.className = "actions";
    actions.append(play, del);
    li.append(title, kind, meta, actions);
    return li;
  }

  async upload() {
    const name = this.el.cloneName.value.trim();
    const file = this.el.cloneFile.files[0];
    if (!name || !file) {
      this.status("Give the voice a name and choose an audio file.", "error");
      return;
    }
    this.status(`Uploading ${file.name}…`);
    try {
      const voice = await addClone(name, file);
      this.el.cloneForm.reset();
      this.status(`Stored “${voice.name}” as ${voice.id}.`, "ok");
      await this.changed();
    } catch (e) {
      this.status(`Not stored: ${e.message}`, "error");
    }
  }

  async savePreset() {
    const name = this.el.presetName.value.trim();
    const s = this.settings();
    if (!name) {
      this.status("Give the preset a name.", "error");
      return;
    }
    if (s.voiceIsStored) {
      this.status("Pick one of the engine's voices as the preset's base voice, not a stored one.", "error");
      return;
    }
    const preset = { name, backend: s.backend, speed: s.speed };
    if (s.voice) preset.voice = s.voice;
    try {
      const voice = await addPreset(preset);
      this.el.presetForm.reset();
      this.status(`Saved preset “${voice.name}” as ${voice.id}.`, "ok");
      await this.changed();
    } catch (e) {
      this.status(`Not saved: ${e.message}`, "error");
    }
  }

  async playSample(v) {
    this.status(`Speaking a sample of ${v.name}…`);
    try {
      const { blob, backend } = await speakSample(v.id, SAMPLE_TEXT);
      if (this.sampleUrl) URL.revokeObjectURL(this.sampleUrl);
      this.sampleUrl = URL.createObjectURL(blob);
      this.el.audio.src = this.sampleUrl;
      this.el.audio.hidden = false;
      this.lastSample = { id: v.id, ok: true, backend, bytes: blob.size, error: null };
      await this.el.audio.play().catch(() => {}); // autoplay may be refused: the controls remain
      this.status(`Sample of ${v.name} (${backend}).`, "ok");
    } catch (e) {
      this.lastSample = { id: v.id, ok: false, backend: null, bytes: 0, error: e.message };
      this.status(`No sample of ${v.name}: ${e.message}`, "error");
    }
  }

  async remove(v) {
    try {
      await deleteVoice(v.id);
      this.status(`Deleted ${v.name}.`, "ok");
      await this.changed();
    } catch (e) {
      this.status(`Not deleted: ${e.message}`, "error");
    }
  }

  async changed() {
    await this.load();
    await this.onChange();
    this.summarize(); // the picker's choice may be gone with a deleted voice
  }

  // What "save as preset" would store, shown as the Speak form changes.
  summarize() {
    const s = this.settings();
    const voice = s.voiceIsStored ? "a stored voice (pick an engine voice)" : s.voice || "its default voice";
    this.el.presetSummary.textContent = `${s.backend || "the active backend"}, ${voice}, speed ${s.speed.toFixed(2)}×`;
  }
}

function button(text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}
