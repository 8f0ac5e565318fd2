// Plays streamed s16le mono PCM as it arrives, through an AudioWorklet ring buffer
// (or scheduled AudioBufferSourceNodes where worklets are unavailable, e.g. plain-http LAN pages),
// and knows how much it has really played: that is what the server's rate control needs.

import { makeLevelReader } from "./audio-level.js";

const WORKLET_URL = "/static/js/pcm-player-worklet.js";
const RING_SECONDS = 30; // far more than the server's bounded lead (~0.5 s)
const SCHEDULE_AHEAD_S = 0.03; // fallback path: first chunk starts this far in the future

export class PcmPlayer {
  constructor({ sampleRate = 24000, maxRecordSeconds = 600 } = {}) {
    this.sampleRate = sampleRate;
    this.maxRecordSamples = maxRecordSeconds * sampleRate;
    this.ctx = null;
    this.node = null; // worklet node, or null on the fallback path
    this.analyser = null;
    this.levelDbfs = () => -120;
    this.carry = null; // an odd trailing byte from the previous push
    this.state = { playedFrames: 0, bufferedFrames: 0, underruns: 0, overflowFrames: 0 };
    this.recorded = [];
    this.recordedSamples = 0;
    this.recordTruncated = false;
    this.sources = []; // fallback path: {src, start, end, frames}
    this.nextTime = 0;
    this.fallbackPlayedFrames = 0;
    this.onstate = null;
    this.onsamples = null; // (Int16Array) => void: every pushed chunk, e.g. for a waveform
    this.initPromise = null;
  }

  // Idempotent; safe before a user gesture (the context stays suspended until resume()).
  init() {
    if (!this.initPromise) this.initPromise = this.#init();
    return this.initPromise;
  }

  async #init() {
    this.ctx = new AudioContext({ sampleRate: this.sampleRate, latencyHint: "interactive" });
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 1024; // ~43 ms at 24 kHz: a level that follows speech closely
    this.analyser.connect(this.ctx.destination);
    this.levelDbfs = makeLevelReader(this.analyser);
    if (this.ctx.audioWorklet) {
      await this.ctx.audioWorklet.addModule(WORKLET_URL);
      this.node = new AudioWorkletNode(this.ctx, "pcm-player", {
        numberOfInputs: 0,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: { capacity: this.sampleRate * RING_SECONDS },
      });
      this.node.port.onmessage = (e) => {
        if (e.data.type === "state") {
          this.state = e.data;
          if (this.onstate) this.onstate(this.state);
        }
      };
      this.node.connect(this.analyser);
    }
  }

  get mode() {
    return this.node ? "worklet" : "scheduled";
  }

  async resume() {
    await this.init();
    if (this.ctx.state !== "running") await this.ctx.resume();
  }

  // A new response: forget counters and the recording of the previous one.
  reset() {
    this.flush();
    this.carry = null;
    this.recorded = [];
    this.recordedSamples = 0;
    this.recordTruncated = false;
    this.fallbackPlayedFrames = 0;
    this.state = { playedFrames: 0, bufferedFrames: 0, underruns: 0, overflowFrames: 0 };
    if (this.node) this.node.port.postMessage({ type: "reset" });
  }

  push(bytes) {
    let buf = new Uint8Array(bytes);
    if (this.carry !== null) {
      const joined = new Uint8Array(buf.length + 1);
      joined[0] = this.carry;
      joined.set(buf, 1);
      buf = joined;
      this.carry = null;
    }
    if (buf.length % 2 === 1) {
      this.carry = buf[buf.length - 1];
      buf = buf.subarray(0, buf.length - 1);
    }
    if (buf.length === 0) return;
    const samples = new Int16Array(buf.slice().buffer); // aligned copy we own
    this.#record(samples);
    if (this.onsamples) this.onsamples(samples);
    if (this.node) {
      const copy = samples.slice();
      this.node.port.postMessage({ type: "push", pcm: copy.buffer }, [copy.buffer]);
    } else {
      this.#schedule(samples);
    }
  }

  // No more audio for this response: what is queued still plays.
  end() {
    if (this.node) this.node.port.postMessage({ type: "end" });
  }

  // Drop queued audio now (Stop, cancel, barge-in).
  flush() {
    this.carry = null;
    if (this.node) {
      this.node.port.postMessage({ type: "flush" });
      this.state = { ...this.state, bufferedFrames: 0 };
    }
    for (const s of this.sources) {
      try { s.src.stop(); } catch { /* never started */ }
    }
    this.#settleFallback(true);
  }

  get playedMs() {
    if (!this.node) this.#settleFallback(false);
    const frames = this.node ? this.state.playedFrames : this.fallbackPlayedFrames + this.#fallbackPartial();
    return (1000 * frames) / this.sampleRate;
  }

  get bufferMs() {
    if (this.node) return (1000 * this.state.bufferedFrames) / this.sampleRate;
    if (!this.ctx) return 0;
    return Math.max(0, (this.nextTime - this.ctx.currentTime) * 1000);
  }

  get underruns() {
    return this.state.underruns;
  }

  get recordedMs() {
    return (1000 * this.recordedSamples) / this.sampleRate;
  }

  #record(samples) {
    if (this.recordedSamples + samples.length > this.maxRecordSamples) {
      this.recordTruncated = true;
      return;
    }
    this.recorded.push(samples);
    this.recordedSamples += samples.length;
  }

  #schedule(samples) {
    const audio = this.ctx.createBuffer(1, samples.length, this.sampleRate);
    const ch = audio.getChannelData(0);
    for (let i = 0; i < samples.length; i++) ch[i] = samples[i] / 32768;
    const src = this.ctx.createBufferSource();
    src.buffer = audio;
    src.connect(this.analyser);
    const start = Math.max(this.nextTime, this.ctx.currentTime + SCHEDULE_AHEAD_S);
    src.start(start);
    this.nextTime = start + audio.duration;
    this.sources.push({ src, start, end: this.nextTime, frames: samples.length });
  }

  // Fallback path: move finished sources into the played count (all of them when flushing,
  // counting only the part that was heard).
  #settleFallback(flushing) {
    if (!this.ctx) return;
    const now = this.ctx.currentTime;
    const keep = [];
    for (const s of this.sources) {
      if (s.end <= now) this.fallbackPlayedFrames += s.frames;
      else if (flushing) this.fallbackPlayedFrames += Math.max(0, Math.round((now - s.start) * this.sampleRate));
      else keep.push(s);
    }
    this.sources = keep;
    if (flushing) this.nextTime = now;
  }

  #fallbackPartial() {
    if (!this.ctx || this.sources.length === 0) return 0;
    const s = this.sources[0];
    return Math.max(0, Math.round((this.ctx.currentTime - s.start) * this.sampleRate));
  }
}
