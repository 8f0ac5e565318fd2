// Small wrappers around Morpheus's HTTP API, shared by the pages.

// A server with API_KEY set answers 401 without it. The page asks once and keeps the key
// for this tab only (sessionStorage): sent as a Bearer header, and as ?api_key= on
// WebSocket URLs, where browsers cannot set headers.
const KEY_ITEM = "morpheus.api_key";

export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

function withKey(options = {}) {
  const key = apiKey();
  if (!key) return options;
  return { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${key}` } };
}

// fetch() that adds the key, and on a 401 asks for it once and tries again.
export async function apiFetch(url, options = {}) {
  const used = apiKey();
  const response = await fetch(url, withKey(options));
  if (response.status !== 401) return response;
  if (apiKey() === used) {
    // Not asked yet since this request left (several may come back 401 at once).
    const key = window.prompt("This Morpheus server needs its API key (API_KEY):", "");
    if (!key) return response;
    sessionStorage.setItem(KEY_ITEM, key.trim());
  }
  return fetch(url, withKey(options));
}

async function json(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = body.error || body;
    const message = (err && (err.message || err.detail)) || `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

// {voices: [{id, name, language, gender, description, backend}]}; old servers give only ids.
export async function fetchVoices() {
  const body = await json(await apiFetch("/v1/audio/voices"));
  const details = Array.isArray(body.voice_details) ? body.voice_details : [];
  if (details.length) return details;
  return (body.voices || []).map((id) => ({ id, name: id, language: "", backend: "" }));
}

// The voice library (stored clones and presets): POST multipart (a clone) or JSON (a preset),
// DELETE by id. Each answers the stored voice, or throws with the server's reason.
export async function addClone(name, file) {
  const form = new FormData();
  form.append("name", name);
  form.append("files", file, file.name);
  return json(await apiFetch("/v1/audio/voices", { method: "POST", body: form }));
}

export async function addPreset(preset) {
  return json(
    await apiFetch("/v1/audio/voices", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(preset),
    }),
  );
}

export async function deleteVoice(id) {
  return json(await apiFetch(`/v1/audio/voices/${encodeURIComponent(id)}`, { method: "DELETE" }));
}

// A whole WAV of `text` in `voice`: {blob, backend} (stream=false: true sizes, seekable).
export async function speakSample(voice, text) {
  const response = await apiFetch("/v1/audio/speech", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ input: text, voice, response_format: "wav", stream: false }),
  });
  if (!response.ok) await json(response); // throws with the reason
  return { blob: await response.blob(), backend: response.headers.get("X-Backend") };
}

// {active, adapters: [{name, active, ready, reason, degraded, ...}]}
export async function fetchAdapters() {
  return json(await apiFetch("/adapters"));
}

export async function fetchConfig() {
  return json(await apiFetch("/config"));
}

export async function setBackend(name) {
  return json(
    await apiFetch("/config", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ tts_backend: name }),
    }),
  );
}

export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const key = apiKey();
  const query = key ? `?api_key=${encodeURIComponent(key)}` : "";
  return `${scheme}//${location.host}${path}${query}`;
}

// The language a voice's code names, for grouping ("en_US" and "en-gb" -> "English").
export function languageName(code) {
  if (!code) return "Other";
  const base = code.replace("_", "-").split("-")[0].toLowerCase();
  try {
    const name = new Intl.DisplayNames(["en"], { type: "language" }).of(base);
    return name && name.toLowerCase() !== base ? name : code;
  } catch {
    return code; // not a language tag Intl knows
  }
}
