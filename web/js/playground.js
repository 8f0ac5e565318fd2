// The playground page: pick a voice and backend, speak text as it streams, stop, download.

import { fetchAdapters, fetchConfig, fetchVoices, languageName, setBackend } from "./api.js";
import { meterValue } from "./audio-level.js";
import { makeEventLog } from "./event-log.js";
import { PcmPlayer } from "./pcm-player.js";
import { PerfPanel } from "./perf-panel.js";
import { speakHttp } from "./speech-http.js";
import { SpeechSocket } from "./speech-ws.js";
import { wavBlob } from "./wav.js";

const EMOTION_TAGS = ["laugh", "chuckle", "sigh", "cough", "sniffle", "groan", "yawn", "gasp"];
const REPORT_EVERY_MS = 200; // playback.report rate: 5 per second
const TICK_MS = 100; // meters and facts
const START_TIMEOUT_MS = 15000; // no response.created by then: give up
const HEALTH_POLL_MS = 5000;

const $ = (id) => document.getElementById(id);
const el = {
  form: $("speak-form"), text: $("text"), count: $("char-count"), tags: $("tag-buttons"),
  voice: $("voice"), backend: $("backend"), backendStatus: $("backend-status"),
  degraded: $("degraded-badge"), speed: $("speed"), speedOut: $("speed-out"),
  transport: $("transport"), lowLatency: $("low-latency"), speak: $("speak"), stop: $("stop"),
  download: $("download"), status: $("status"), level: $("level"), levelDb: $("level-db"),
  ttfa: $("fact-ttfa"), played: $("fact-played"), buffer: $("fact-buffer"),
  factBackend: $("fact-backend"), request: $("fact-request"), underruns: $("fact-underruns"),
  log: $("event-log"),
};
// every server event this page saw (bounded), for people and tests
const { events, log: logEvent } = makeEventLog(el.log);

const player = new PcmPlayer();
let maxChars = 100000;
let voices = [];
let activeBackend = null;
let lastHeaders = null;
let downloadUrl = null;
let current = { phase: "idle" }; // the response in progress; replaced, never mutated after it ends

function setStatus(text, kind = "info") {
  el.status.textContent = text;
  el.status.dataset.kind = kind;
}


// ---- text, counter, tags

function updateCount() {
  const n = el.text.value.length;
  el.count.textContent = `${n.toLocaleString("en")} / ${maxChars.toLocaleString("en")} characters`;
  el.count.dataset.over = n > maxChars ? "true" : "false";
}

function insertTag(tag) {
  const t = el.text;
  const start = t.selectionStart ?? t.value.length;
  const end = t.selectionEnd ?? start;
  const before = t.value.slice(0, start);
  const pad = before && !/\s$/.test(before) ? " " : "";
  t.setRangeText(`${pad}<${tag}> `, start, end, "end");
  t.focus();
  updateCount();
}

for (const tag of EMOTION_TAGS) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "tag";
  b.textContent = `<${tag}>`;
  b.setAttribute("aria-label", `Insert ${tag} tag`);
  // Keep the textarea's cursor: a mouse press on the button would otherwise blur it first.
  b.addEventListener("mousedown", (e) => e.preventDefault());
  b.addEventListener("click", () => insertTag(tag));
  el.tags.append(b);
}

// ---- voices and backends

function voiceOption(v) {
  const name = v.name || v.id;
  const bits = [v.language && v.language !== name ? v.language : null, v.gender].filter(Boolean);
  const opt = new Option(bits.length ? `${name} (${bits.join(", ")})` : name, v.id);
  if (v.description) opt.title = v.description;
  return opt;
}

function renderVoices() {
  const chosen = el.voice.value;
  let list = voices.filter((v) => !v.backend || v.backend === activeBackend);
  if (!list.length) list = voices;
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
  el.voice.replaceChildren(...nodes);
  el.voice.value = list.some((v) => v.id === chosen) ? chosen : "";
}

async function loadVoices() {
  try {
    voices = await fetchVoices();
    renderVoices();
  } catch (e) {
    setStatus(`Could not load voices: ${e.message}`, "error");
  }
}

function renderAdapters(data) {
  activeBackend = data.active;
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

async function loadAdapters() {
  try {
    renderAdapters(await fetchAdapters());
  } catch (e) {
    el.backendStatus.textContent = `could not load backends: ${e.message}`;
    el.backendStatus.dataset.kind = "error";
  }
}

async function switchBackend() {
  const name = el.backend.value;
  el.backend.disabled = true;
  try {
    await setBackend(name);
    await loadAdapters();
    await loadVoices(); // the voice list is the active backend's
    setStatus(`Backend switched to ${name}.`);
  } catch (e) {
    setStatus(`Could not switch to ${name}: ${e.message}`, "error");
    await loadAdapters();
  } finally {
    el.backend.disabled = false;
  }
}

// ---- speaking

const socket = new SpeechSocket({
  onEvent: (ev) => onServerEvent(ev),
  onAudio: (buf) => onAudio(buf),
  onClose: () => {
    if (current.transport === "ws" && current.phase !== "idle" && current.phase !== "draining") {
      finish(current, "failed", "the connection closed");
    }
  },
});

// A WebSocket session pins its backend when it opens, so name the picker's backend each time.
function sessionFields() {
  const session = { low_latency: el.lowLatency.checked, speed: Number(el.speed.value) };
  if (el.backend.value) session.backend = el.backend.value;
  if (el.voice.value) session.voice = el.voice.value;
  return session;
}

async function speak() {
  const text = el.text.value.trim();
  if (!text) {
    setStatus("Type some text first.", "error");
    el.text.focus();
    return;
  }
  if (text.length > maxChars) {
    setStatus(`The text is over the ${maxChars}-character limit.`, "error");
    return;
  }
  if (current.phase !== "idle") stop();
  const run = {
    phase: "starting",
    transport: el.transport.value,
    startedAt: performance.now(),
    firstAudioAt: null,
    responseId: null,
    abort: null,
    timers: [],
    lastError: null,
  };
  current = run;
  el.stop.disabled = false;
  el.download.hidden = true;
  el.ttfa.textContent = "…";
  setStatus("Synthesizing…");
  try {
    await player.resume();
    player.reset();
    if (run.transport === "ws") {
      // session.update cannot unset a voice: back to the default voice means a fresh session.
      if (!el.voice.value && socket.customVoice) socket.close();
      await socket.connect();
      if (current !== run) return;
      socket.speak(text, sessionFields());
      run.timers.push(setInterval(() => socket.report(player.playedMs, player.bufferMs), REPORT_EVERY_MS));
      run.timers.push(setTimeout(() => {
        if (run.phase === "starting") finish(run, "failed", "the server did not start a response");
      }, START_TIMEOUT_MS));
    } else {
      await speakOverHttp(run, text);
    }
  } catch (e) {
    if (current === run && !(run.abort && run.abort.signal.aborted)) finish(run, "failed", e.message);
  }
}

async function speakOverHttp(run, text) {
  run.abort = new AbortController();
  const body = { input: text, speed: Number(el.speed.value), low_latency: el.lowLatency.checked };
  if (el.voice.value) body.voice = el.voice.value;
  await speakHttp(body, {
    signal: run.abort.signal,
    onHeaders: (h) => {
      lastHeaders = h;
      run.phase = "speaking";
      el.factBackend.textContent = h.backend || "–";
      el.request.textContent = h.requestId || "–";
      if (h.degraded && h.degraded !== "false" && h.degraded !== "0") el.degraded.hidden = false;
      logEvent({ type: "http.headers", backend: h.backend, request_id: h.requestId, degraded: h.degraded });
    },
    onAudio: (bytes) => {
      if (current === run) onAudio(bytes);
    },
  });
  if (current === run && run.phase !== "idle") {
    player.end();
    run.phase = "draining";
  }
}

function onAudio(bytes) {
  const run = current;
  if (run.phase === "idle") return;
  if (run.firstAudioAt === null) {
    run.firstAudioAt = performance.now();
    el.ttfa.textContent = `${Math.round(run.firstAudioAt - run.startedAt)} ms`;
    setStatus("Playing…");
  }
  player.push(bytes);
}

function onServerEvent(ev) {
  logEvent(ev);
  const run = current;
  switch (ev.type) {
    case "session.created":
    case "session.updated":
      if (ev.session && ev.session.backend) el.factBackend.textContent = ev.session.backend;
      break;
    case "response.created":
      if (run.transport === "ws" && run.phase === "starting") {
        run.phase = "speaking";
        run.responseId = ev.response_id ?? null;
        el.request.textContent = ev.response_id || "–";
      }
      break;
    case "response.audio.started":
      if (ev.ttft_ms !== undefined && run.responseId === (ev.response_id ?? run.responseId)) {
        el.ttfa.textContent += ` (server ${Math.round(ev.ttft_ms)} ms)`;
      }
      break;
    case "response.done":
      if (run.transport !== "ws" || run.phase === "starting" || run.phase === "idle") break;
      if (ev.response_id !== undefined && ev.response_id !== run.responseId) break; // an older one
      if (ev.degraded) el.degraded.hidden = false; // a fallback engine finished this response
      if (ev.backend) el.factBackend.textContent = ev.backend;
      if (ev.status === "completed") {
        player.end();
        run.phase = "draining";
      } else {
        player.flush();
        finish(run, ev.status === "cancelled" ? "stopped" : "failed", run.lastError);
      }
      break;
    case "output_audio_buffer.cleared":
      if (ev.response_id === undefined || ev.response_id === run.responseId) player.flush();
      break;
    case "error":
      run.lastError = `${ev.message || ev.code}${ev.field ? ` (${ev.field})` : ""}`;
      setStatus(`Server: ${run.lastError}`, "error");
      break;
    default:
      break;
  }
}

function stop() {
  const run = current;
  if (run.phase === "idle") return;
  if (run.transport === "ws") socket.cancel();
  else if (run.abort) run.abort.abort();
  player.flush();
  finish(run, "stopped");
}

function finish(run, outcome, detail) {
  if (run.phase === "idle") return;
  run.phase = "idle";
  for (const t of run.timers) clearInterval(t); // clears timeouts too
  if (run.transport === "ws" && outcome === "completed") socket.report(player.playedMs, 0);
  el.stop.disabled = true;
  const secs = (player.recordedMs / 1000).toFixed(1);
  if (outcome === "completed") setStatus(`Done: ${secs} s of audio.`, "ok");
  else if (outcome === "stopped") setStatus(`Stopped after ${(player.playedMs / 1000).toFixed(1)} s.`);
  else setStatus(`Failed: ${detail || "unknown error"}`, "error");
  if (player.recordedSamples > 0) {
    if (downloadUrl) URL.revokeObjectURL(downloadUrl);
    downloadUrl = URL.createObjectURL(wavBlob(player.recorded, player.sampleRate));
    el.download.href = downloadUrl;
    el.download.textContent = player.recordTruncated ? "Download WAV (first 10 min)" : `Download WAV (${secs} s)`;
    el.download.hidden = false;
  }
}

function tick() {
  const db = player.levelDbfs();
  el.level.value = meterValue(db);
  el.levelDb.textContent = db <= -120 ? "silent" : `${db.toFixed(0)} dBFS`;
  const run = current;
  if (run.phase !== "idle" || run.firstAudioAt) {
    el.played.textContent = `${(player.playedMs / 1000).toFixed(1)} s`;
    el.buffer.textContent = `${Math.round(player.bufferMs)} ms`;
    el.underruns.textContent = String(player.underruns);
  }
  // Everything received has played out: the response is over for the listener too.
  const playedAll = player.recordTruncated
    ? player.bufferMs === 0
    : player.playedMs >= player.recordedMs - 1 && player.bufferMs === 0;
  if (run.phase === "draining" && playedAll) finish(run, "completed");
}

// ---- wiring

el.form.addEventListener("submit", (e) => {
  e.preventDefault();
  speak();
});
el.stop.addEventListener("click", stop);
el.text.addEventListener("input", updateCount);
el.text.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    speak();
  }
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && current.phase !== "idle") stop();
});
el.speed.addEventListener("input", () => {
  el.speedOut.textContent = `${Number(el.speed.value).toFixed(2)}×`;
});
el.backend.addEventListener("change", switchBackend);

const perf = new PerfPanel(document.getElementById("perf"));
perf.start();
setInterval(tick, TICK_MS);
setInterval(() => {
  if (document.visibilityState === "visible" && document.activeElement !== el.backend) loadAdapters();
}, HEALTH_POLL_MS);

window.__morpheus = {
  level: () => player.levelDbfs(),
  playedMs: () => player.playedMs,
  bufferMs: () => player.bufferMs,
  phase: () => current.phase,
  playerMode: () => player.mode,
  lastHeaders: () => lastHeaders,
  events,
  perf: () => ({ frames: perf.frames, last: perf.last }),
};

updateCount();
player.init().catch((e) => setStatus(`Audio output unavailable: ${e.message}`, "error"));
fetchConfig()
  .then((cfg) => {
    const limit = cfg.max_input_chars ?? cfg.settings?.max_input_chars ?? cfg.config?.max_input_chars;
    if (Number.isFinite(limit)) maxChars = limit;
    updateCount();
  })
  .catch(() => {}); // the counter keeps the documented default limit
loadAdapters().then(loadVoices);
socket.connect().catch(() => {}); // warm the connection; speak() reconnects and reports errors
