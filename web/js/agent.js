// The voice-agent page: a WebRTC call with Morpheus. Its voice comes back as a remote track
// played by an <audio> element (so echo cancellation works) and metered through Web Audio;
// the `events` data channel carries text in, events out, and our playout reports back.

import { apiFetch } from "./api.js";
import { makeLevelReader, meterValue } from "./audio-level.js";
import { makeEventLog } from "./event-log.js";
import { PlayoutStats } from "./playout-stats.js";
import { Transcript } from "./transcript.js";

const ICE_GATHER_MAX_MS = 2000; // send what we have by then rather than wait on a slow interface
const REPORT_EVERY_MS = 200; // playback.report over the data channel, 5 per second
const METER_EVERY_MS = 10; // level polling: fine enough to time a barge-in to ~10 ms
const AUDIBLE_DBFS = -45; // above this the remote voice or the mic is "sounding"
const SILENT_DBFS = -55; // below this for SILENT_HOLD_MS the remote voice has stopped
const SILENT_HOLD_MS = 250; // longer than the pauses between words
const STOP_WAIT_MS = 4000; // give up measuring a barge-in after this
const CONFIRM_SILENT_MS = 1500; // a verdict of "stopped" is final once it stayed quiet this long
const MIC_ONSET_MEMORY_MS = 3000; // a mic onset this recent explains a speech_started
const TEXT_PIECE_CHARS = 300; // data-channel messages stay well under aiortc's 1200-byte SCTP chunk

const $ = (id) => document.getElementById(id);
const el = {
  connect: $("connect"), hangup: $("hangup"), conn: $("conn-state"), audio: $("remote"),
  bargeInAllowed: $("barge-in"),
  remoteLevel: $("remote-level"), remoteDb: $("remote-db"), micLevel: $("mic-level"), micDb: $("mic-db"),
  jitter: $("stat-jitter"), concealed: $("stat-concealed"), received: $("stat-received"),
  lost: $("stat-lost"), reports: $("stat-reports"), pcState: $("stat-pc"),
  form: $("say-form"), say: $("say"), speak: $("speak"), stop: $("stop"), sayStatus: $("say-status"),
  bargein: $("bargein"), biTitle: $("bargein-title"), biDetail: $("bargein-detail"),
  biCount: $("bi-count"), biHeard: $("bi-heard"), biStop: $("bi-stop"), biPlayed: $("bi-played"),
  biWords: $("bi-words"), biHeardText: $("bargein-heard"), transcript: $("transcript"),
  log: $("event-log"),
};
// every server event this page saw (bounded), for people and tests
const { events, log: logEvent, note } = makeEventLog(el.log);
const transcript = new Transcript(el.transcript);

const bargeIns = []; // {at_ms, interrupted, heard_after_ms, silent_at_ms, stop_after_event_ms, stop_after_mic_ms}
let call = null; // the live call: {pc, dc, mic, timers, ...}; null when idle
let audioCtx = null;
let remoteLevel = () => -120;
let micLevel = () => -120;
let micWasAudible = false;
let lastMicOnset = null;
let speaking = false; // a response is active on the server
let responseId = null;
let measuring = null; // an open barge-in measurement
let reportsSent = 0;
let lastCutId = null; // the response whose heard_text is shown

function setConn(text, state) {
  el.conn.textContent = text;
  el.conn.dataset.state = state;
}


function send(event) {
  if (call && call.dc.readyState === "open") call.dc.send(JSON.stringify(event));
}

// ---- connecting

function waitIceGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, ICE_GATHER_MAX_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function analyserFor(stream) {
  const analyser = audioCtx.createAnalyser();
  analyser.fftSize = 512; // ~11 ms at 48 kHz: silence is seen within one window
  audioCtx.createMediaStreamSource(stream).connect(analyser);
  return makeLevelReader(analyser);
}

async function connect() {
  if (call) return;
  el.connect.disabled = true;
  setConn("asking for the microphone…", "connecting");
  const c = { pc: null, dc: null, mic: null, timers: [], stats: new PlayoutStats(), pcId: null };
  call = c;
  try {
    audioCtx = audioCtx || new AudioContext();
    if (audioCtx.state !== "running") await audioCtx.resume();
    // The microphone first: Chrome reveals real host candidates only once it is granted.
    c.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    micLevel = analyserFor(c.mic);
    setConn("connecting…", "connecting");
    const pc = new RTCPeerConnection({ iceServers: [] });
    c.pc = pc;
    // One audio m-line, both ways: our microphone up, Morpheus's voice down.
    pc.addTransceiver(c.mic.getAudioTracks()[0], { direction: "sendrecv", streams: [c.mic] });
    pc.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      el.audio.srcObject = stream;
      el.audio.play().catch(() => {}); // autoplay may wait for a gesture; the Connect click is one
      remoteLevel = analyserFor(stream);
    };
    pc.onconnectionstatechange = () => {
      el.pcState.textContent = pc.connectionState;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        if (call === c) hangup(`connection ${pc.connectionState}`);
      }
    };
    const dc = pc.createDataChannel("events", { ordered: true });
    c.dc = dc;
    dc.onopen = () => {
      setConn("connected", "connected");
      if (!el.bargeInAllowed.checked) send({ type: "session.update", session: { barge_in: false } });
      el.speak.disabled = false;
      el.hangup.disabled = false;
      c.timers.push(setInterval(() => report(c), REPORT_EVERY_MS));
    };
    dc.onmessage = (e) => onEvent(e.data);
    dc.onclose = () => {
      if (call === c) hangup("the server closed the call");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitIceGathering(pc);
    const response = await apiFetch("/webrtc/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error?.message || answer.message || `offer rejected (${response.status})`);
    c.pcId = answer.pc_id;
    if (call !== c) return;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    el.hangup.disabled = false;
  } catch (e) {
    if (call === c) hangup(`could not connect: ${e.message}`, "failed");
  }
}

function hangup(reason = "hung up", state = "idle") {
  const c = call;
  if (!c) return;
  call = null;
  for (const t of c.timers) clearInterval(t);
  if (c.dc) c.dc.close();
  if (c.pc) c.pc.close();
  if (c.mic) for (const t of c.mic.getTracks()) t.stop();
  el.audio.srcObject = null;
  remoteLevel = () => -120;
  micLevel = () => -120;
  speaking = false;
  responseId = null;
  setConn(reason, state === "failed" ? "failed" : "idle");
  el.connect.disabled = false;
  el.hangup.disabled = true;
  el.speak.disabled = true;
  el.stop.disabled = true;
}

// ---- speaking

function speak() {
  const text = el.say.value.trim();
  if (!text) {
    el.sayStatus.textContent = "Type something for Morpheus to say.";
    el.say.focus();
    return;
  }
  // Pieces, as an LLM would stream tokens; also keeps each message small.
  for (let i = 0; i < text.length; i += TEXT_PIECE_CHARS) {
    send({ type: "input_text.append", text: text.slice(i, i + TEXT_PIECE_CHARS) });
  }
  send({ type: "input_text.done" });
  transcript.queue(text);
  el.sayStatus.textContent = "Sent.";
  el.stop.disabled = false;
}

function stop() {
  send({ type: "response.cancel" });
}

function onEvent(data) {
  let ev;
  try {
    ev = JSON.parse(data);
  } catch {
    return;
  }
  logEvent(ev);
  switch (ev.type) {
    case "response.created":
      speaking = true;
      responseId = ev.response_id ?? null;
      transcript.begin(responseId);
      el.sayStatus.textContent = "Morpheus is speaking.";
      el.stop.disabled = false;
      break;
    case "response.audio.started":
      if (ev.ttft_ms !== undefined) el.sayStatus.textContent = `Morpheus is speaking (first audio after ${Math.round(ev.ttft_ms)} ms).`;
      break;
    case "response.done":
      onCut(ev);
      transcript.end(ev.response_id, ev.status);
      if (ev.response_id === undefined || ev.response_id === responseId) {
        speaking = false;
        el.stop.disabled = true;
        el.sayStatus.textContent = `Response ${ev.status}${ev.audio_ms !== undefined ? ` after ${(ev.audio_ms / 1000).toFixed(1)} s of audio` : ""}.`;
      }
      break;
    case "input_audio_buffer.speech_started":
      onSpeechStarted(ev);
      break;
    case "output_audio_buffer.cleared":
      if (ev.played_ms !== undefined) el.biPlayed.textContent = `${(ev.played_ms / 1000).toFixed(2)} s`;
      onCut(ev);
      break;
    case "error":
      el.sayStatus.textContent = `Server: ${ev.message || ev.code}`;
      break;
    default:
      break;
  }
}

// ---- what the caller heard of a reply that was cut off (barge-in or Stop)

function onCut(ev) {
  if (ev.heard_text === undefined || ev.response_id === lastCutId) return; // cleared and done both carry it
  lastCutId = ev.response_id;
  transcript.dropQueued(); // the server drops text it kept for the next response
  const last = bargeIns.at(-1);
  const byCaller = Boolean(last && last.interrupted && last.heard_text === undefined
    && performance.now() - last.at_ms < STOP_WAIT_MS);
  const played = Number.isFinite(ev.played_ms) ? ev.played_ms : ev.audio_ms;
  const counts = transcript.cut(ev.response_id, ev.heard_text, played, byCaller ? "barge-in" : "stop");
  const quote = ev.heard_text ? `“${ev.heard_text}”` : "nothing in full";
  note(`${byCaller ? "barge-in" : "stopped"}: the caller heard ${quote} (${(played / 1000).toFixed(2)} s played)`);
  if (!byCaller) return;
  last.heard_text = ev.heard_text;
  el.biHeardText.textContent = `You heard ${quote} before cutting it off.`;
  el.biHeardText.hidden = false;
  if (counts) el.biWords.textContent = `${counts.heard} of ${counts.heard + counts.unheard}`;
}

// ---- barge-in: the server heard the caller; time how long the voice takes to go quiet

function onSpeechStarted(ev) {
  const now = performance.now();
  const audible = remoteLevel() > SILENT_DBFS;
  const interrupted = speaking || audible;
  const micOnset = lastMicOnset !== null && now - lastMicOnset < MIC_ONSET_MEMORY_MS ? lastMicOnset : null;
  const record = {
    at_ms: Math.round(now),
    interrupted,
    audio_start_ms: ev.audio_start_ms,
    heard_after_ms: micOnset !== null ? Math.round(now - micOnset) : null,
    silent_at_ms: null, // performance.now() when the remote voice went quiet
    stop_after_event_ms: null,
    stop_after_mic_ms: null,
  };
  bargeIns.push(record);
  el.bargein.dataset.active = "true";
  el.biCount.textContent = String(bargeIns.filter((b) => b.interrupted).length);
  el.biHeard.textContent = record.heard_after_ms !== null ? `${record.heard_after_ms} ms` : "–";
  if (!interrupted || !el.bargeInAllowed.checked) {
    record.interrupted = false;
    el.biCount.textContent = String(bargeIns.filter((b) => b.interrupted).length);
    el.biTitle.textContent = "Morpheus heard you";
    el.biDetail.textContent = interrupted
      ? "Barge-in is off, so it keeps talking."
      : "It was not speaking, so there was nothing to interrupt.";
    return;
  }
  el.biTitle.textContent = "Barge-in: Morpheus heard you and is stopping";
  el.biDetail.textContent = "Measuring how long its voice takes to go quiet…";
  el.biStop.textContent = "…";
  measuring = { record, eventAt: now, micOnset, silentSince: null, reported: false };
}

function measureStop(now) {
  const m = measuring;
  if (!m) return;
  const r = m.record;
  if (remoteLevel() < SILENT_DBFS) {
    if (m.silentSince === null) m.silentSince = now;
    if (!m.reported && now - m.silentSince >= SILENT_HOLD_MS) {
      r.silent_at_ms = Math.round(m.silentSince);
      r.stop_after_event_ms = Math.round(m.silentSince - m.eventAt);
      r.stop_after_mic_ms = m.micOnset !== null ? Math.round(m.silentSince - m.micOnset) : null;
      m.reported = true;
      el.biTitle.textContent = "Barge-in: Morpheus stopped talking";
      el.biStop.textContent = `${r.stop_after_mic_ms ?? r.stop_after_event_ms} ms`;
      el.biDetail.textContent = r.stop_after_mic_ms !== null
        ? `Silent ${r.stop_after_mic_ms} ms after you started speaking (${r.stop_after_event_ms} ms after the server heard you).`
        : `Silent ${r.stop_after_event_ms} ms after the server heard you.`;
    }
    if (m.reported && now - m.silentSince >= CONFIRM_SILENT_MS) measuring = null; // it stayed quiet
    return;
  }
  m.silentSince = null;
  if (m.reported) {
    // It was only a pause between words: take the verdict back and keep measuring.
    m.reported = false;
    r.silent_at_ms = r.stop_after_event_ms = r.stop_after_mic_ms = null;
    el.biTitle.textContent = "Barge-in: Morpheus heard you and is stopping";
    el.biStop.textContent = "…";
  }
  if (now - m.eventAt > STOP_WAIT_MS) {
    el.biTitle.textContent = "Barge-in: audio did not stop";
    el.biDetail.textContent = `Morpheus was still audible ${STOP_WAIT_MS / 1000} s after it heard you.`;
    el.biStop.textContent = "did not stop";
    measuring = null;
  }
}

function meters() {
  const now = performance.now();
  const remote = remoteLevel();
  const mic = micLevel();
  el.remoteLevel.value = meterValue(remote);
  el.micLevel.value = meterValue(mic);
  el.remoteDb.textContent = remote <= -120 ? "silent" : `${remote.toFixed(0)} dBFS`;
  el.micDb.textContent = mic <= -120 ? "silent" : `${mic.toFixed(0)} dBFS`;
  const micAudible = mic > AUDIBLE_DBFS;
  if (micAudible && !micWasAudible) lastMicOnset = now;
  micWasAudible = micAudible;
  measureStop(now);
}

// ---- playout reports from getStats()

async function report(c) {
  if (!c.pc || c.dc.readyState !== "open") return;
  const r = await c.stats.read(c.pc);
  if (!r || call !== c) return;
  send(r.report);
  reportsSent += 1;
  el.jitter.textContent = `${Math.round(r.jitterMs)} ms`;
  el.concealed.textContent = `${r.concealedPct.toFixed(1)} %`;
  el.received.textContent = `${r.receivedS.toFixed(1)} s`;
  el.lost.textContent = String(r.lost);
  el.reports.textContent = String(reportsSent);
}

// ---- wiring

el.connect.addEventListener("click", connect);
el.hangup.addEventListener("click", () => hangup());
el.form.addEventListener("submit", (e) => {
  e.preventDefault();
  speak();
});
el.stop.addEventListener("click", stop);
el.bargeInAllowed.addEventListener("change", () => {
  send({ type: "session.update", session: { barge_in: el.bargeInAllowed.checked } });
});
el.say.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    speak();
  }
});
window.addEventListener("pagehide", () => hangup());
setInterval(meters, METER_EVERY_MS);

window.__morpheus = {
  level: () => remoteLevel(),
  micLevel: () => micLevel(),
  connectionState: () => (call && call.pc ? call.pc.connectionState : "closed"),
  channelOpen: () => Boolean(call && call.dc && call.dc.readyState === "open"),
  speaking: () => speaking,
  reportsSent: () => reportsSent,
  bargeIns,
  events,
};
