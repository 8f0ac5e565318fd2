// Small wrappers around Morpheus's HTTP API, shared by the pages.

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
  const body = await json(await fetch("/v1/audio/voices"));
  const details = Array.isArray(body.voice_details) ? body.voice_details : [];
  if (details.length) return details;
  return (body.voices || []).map((id) => ({ id, name: id, language: "", backend: "" }));
}

// {active, adapters: [{name, active, ready, reason, degraded, ...}]}
export async function fetchAdapters() {
  return json(await fetch("/adapters"));
}

export async function fetchConfig() {
  return json(await fetch("/config"));
}

export async function setBackend(name) {
  return json(
    await fetch("/config", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ tts_backend: name }),
    }),
  );
}

export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
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
