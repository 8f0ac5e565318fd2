// The playground page: pick a voice and backend, speak text as it streams (its words lit as
// they are heard), stop, see the waveform and download it.

import { meterValue } from "./audio-level.js";
import { makeEventLog } from "./event-log.js";
import { PcmPlayer } from "./pcm-player.js";
import { PerfPanel } from "./perf-panel.js";
import { Pickers } from "./pickers.js";
import { ResponseView } from "./response-view.js";
import { speakHttp } from "./speech-http.js";
import { SpeechSocket } from "./speech-ws.js";
import { TextBox } from "./text-box.js";
import { VoicesPanel } from "./voices-panel.js";

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
  spoken: $("spoken"), words: $("words"), timing: $("timing-kind"), heard: $("heard"),
  showSpoken: $("show-spoken"),
  wave: $("wave"), canvas: $("waveform"), caption: $("wave-caption"),
};
// every server event this page saw (bounded), for people and tests
const { events, log: logEvent } = makeEventLog(el.log);

// What was typed, or next to it what the engine was given to say ("$12.50" -> "twelve dollars
// and fifty cents"; markup and emoji are never spoken, so they have nothing next to them).
el.showSpoken.addEventListener("change", () => {
  el.words.classList.toggle("show-spoken", el.showSpoken.checked);
});

const player = new PcmPlayer();
const view = new ResponseView(el);
player.onsamples = (samples) => view.samples(samples);
const pickers = new Pickers(el, { onStatus: (text, kind) => setStatus(text, kind) });
const textBox = new TextBox(el, { onSubmit: () => speak() });
let lastHeaders = null;
let current = { phase: "idle" }; // the response in progress; replaced, never mutated after it ends

function setStatus(text, kind = "info") {
  el.status.textContent = text;
  el.status.dataset.kind = kind;
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

// A WebSocket session pins its backend when it opens, so name the picker's backend each time;
// but not with a stored voice, which speaks on its own backend (a clone on one that clones).
function sessionFields() {
  const session = { low_latency: el.lowLatency.checked, speed: Number(el.speed.value) };
  if (el.backend.value && !pickers.isStored(el.voice.value)) session.backend = el.backend.value;
  if (el.voice.value) session.voice = el.voice.value;
  return session;
}

async function speak() {
  const text = textBox.value.trim();
  if (!text) {
    setStatus("Type some text first.", "error");
    textBox.focus();
    return;
  }
  if (text.length > textBox.maxChars) {
    setStatus(`The text is over the ${textBox.maxChars}-character limit.`, "error");
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
  view.begin(text, { timed: run.transport === "ws" });
  el.ttfa.textContent = "…";
  setStatus("Synthesizing…");
  try {
    await player.resume();
    player.reset();
    if (run.transport === "ws") {
      // session.update cannot unset a voice: back to the default voice means a fresh session;
      // nor a backend: a stored voice after a pinned backend needs one too.
      const stored = pickers.isStored(el.voice.value);
      if ((!el.voice.value && socket.customVoice) || (stored && socket.pinnedBackend)) socket.close();
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
        view.bind(run.responseId);
        el.request.textContent = ev.response_id || "–";
      }
      break;
    case "response.word":
      if (view.mine(ev)) view.word(ev);
      break;
    case "response.audio.started":
      if (ev.ttft_ms !== undefined && run.responseId === (ev.response_id ?? run.responseId)) {
        el.ttfa.textContent += ` (server ${Math.round(ev.ttft_ms)} ms)`;
      }
      break;
    case "response.done":
      if (ev.heard_text !== undefined && view.mine(ev)) view.cut(ev.heard_text);
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
      if (ev.heard_text !== undefined && view.mine(ev)) view.cut(ev.heard_text);
      if (run.phase !== "idle" && (ev.response_id === undefined || ev.response_id === run.responseId)) {
        player.flush();
      }
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
  if (run.transport === "ws") {
    // Where playback is, right now: the server works out heard_text from it.
    socket.report(player.playedMs, player.bufferMs);
    socket.cancel();
  } else if (run.abort) {
    run.abort.abort();
  }
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
  view.finish({
    outcome,
    playedMs: player.playedMs,
    recording: {
      chunks: player.recorded, samples: player.recordedSamples, ms: player.recordedMs,
      sampleRate: player.sampleRate, truncated: player.recordTruncated,
    },
  });
}

// The highlighted word follows the player's own clock, every frame while audio may play.
function followWords() {
  if (current.phase !== "idle") view.follow(player.playedMs);
  requestAnimationFrame(followWords);
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
  if (run.phase === "idle") view.settle(player.playedMs);
}

// ---- wiring

el.form.addEventListener("submit", (e) => {
  e.preventDefault();
  speak();
});
el.stop.addEventListener("click", stop);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && current.phase !== "idle") stop();
});
el.speed.addEventListener("input", () => {
  el.speedOut.textContent = `${Number(el.speed.value).toFixed(2)}×`;
});

const voicesPanel = new VoicesPanel({
  list: $("library"), empty: $("library-empty"), status: $("voices-status"), audio: $("sample-audio"),
  cloneForm: $("clone-form"), cloneName: $("clone-name"), cloneFile: $("clone-file"),
  presetForm: $("preset-form"), presetName: $("preset-name"), presetSummary: $("preset-summary"),
}, {
  settings: () => ({
    backend: el.backend.value, voice: el.voice.value, voiceIsStored: pickers.isStored(el.voice.value),
    speed: Number(el.speed.value),
  }),
  onChange: () => pickers.loadVoices(),
});
for (const input of [el.backend, el.voice, el.speed]) {
  input.addEventListener("input", () => voicesPanel.summarize());
  input.addEventListener("change", () => voicesPanel.summarize());
}

const perf = new PerfPanel(document.getElementById("perf"));
perf.start();
setInterval(tick, TICK_MS);
requestAnimationFrame(followWords);
setInterval(() => {
  if (document.visibilityState === "visible" && document.activeElement !== el.backend) pickers.loadAdapters();
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
  // the highlighted word, the played position it was chosen for, and the position now
  currentWord: () => {
    const w = el.words.querySelector("[aria-current]");
    return {
      playedMs: player.playedMs,
      followedMs: view.followedMs,
      text: w ? w.textContent : null,
      startMs: w ? Number(w.dataset.startMs) : null,
      endMs: w ? Number(w.dataset.endMs) : null,
    };
  },
  waveInk: () => view.drawn,
  voiceSample: () => voicesPanel.lastSample,
};

player.init().catch((e) => setStatus(`Audio output unavailable: ${e.message}`, "error"));
textBox.loadLimit();
pickers.loadAdapters().then(() => pickers.loadVoices()).then(() => voicesPanel.summarize());
voicesPanel.load();
socket.connect().catch(() => {}); // warm the connection; speak() reconnects and reports errors
