// The playground's view of one response: its words highlighted as they are heard, whether the
// timings are exact or estimated, what was heard when it was stopped, and once it is over, the
// waveform of the audio received with the WAV to download.

import { drawWaveform, PeakSummary } from "./waveform.js";
import { wavBlob } from "./wav.js";
import { WordTrack } from "./word-track.js";

const KIND_TEXT = {
  exact: "exact timings",
  estimated: "estimated timings",
  mixed: "partly estimated timings",
  none: "no word timings yet",
};

export class ResponseView {
  // el: {spoken, words, timing, heard, wave, canvas, caption, download} elements.
  constructor(el) {
    this.el = el;
    this.words = new WordTrack(el.words);
    this.peaks = new PeakSummary();
    this.responseId = null;
    this.timed = false; // the transport carries word timings
    this.heardText = null; // set once the audio was cut off
    this.heardUntil = 1; // fraction of the received audio that was played
    this.downloadUrl = null;
    this.shown = null; // the drawn waveform: {cut, receivedMs, playedMs}
    this.followedMs = null; // the played position the highlight was last set from
    this.drawn = 0; // ink columns of the last waveform drawing, for tests
    new ResizeObserver(() => {
      if (!el.wave.hidden) this.#draw();
    }).observe(el.canvas);
  }

  // A new response speaking `text`; `timed`: word events will come (WebSocket transport).
  begin(text, { timed }) {
    this.responseId = null;
    this.timed = timed;
    this.heardText = null;
    this.heardUntil = 1;
    this.shown = null;
    this.followedMs = null;
    this.peaks.reset();
    this.words.begin(text);
    this.el.words.dataset.timed = String(timed);
    this.el.spoken.hidden = false;
    this.el.heard.hidden = true;
    this.el.wave.hidden = true;
    this.#showKind();
  }

  // The server named the response: word and heard_text events of other responses are ignored.
  bind(responseId) {
    this.responseId = responseId;
  }

  mine(ev) {
    return ev.response_id !== undefined && ev.response_id === this.responseId;
  }

  word(ev) {
    const before = this.words.kind;
    this.words.add(ev);
    if (this.words.kind !== before) this.#showKind();
  }

  samples(int16) {
    this.peaks.add(int16);
  }

  follow(playedMs) {
    if (this.heardText !== null) return;
    this.words.follow(playedMs);
    this.followedMs = playedMs;
  }

  // `heard_text` from output_audio_buffer.cleared or response.done (both carry it).
  cut(heardText) {
    if (this.heardText === heardText) return;
    this.heardText = heardText;
    const { heard, unheard } = this.words.cut(heardText);
    const quote = heardText ? `“${heardText}”` : "nothing";
    this.el.heard.textContent = `Heard: ${quote}. Not heard: ${unheard} of ${heard + unheard} words.`;
    this.el.heard.hidden = false;
  }

  // The response is over for the listener. `playedMs`: how much of it they heard;
  // `recording`: the player's recorded chunks for the WAV.
  finish({ outcome, playedMs, recording }) {
    if (outcome === "completed") this.words.complete();
    else this.words.follow(-1); // nothing is "being heard" any more
    if (recording.samples === 0) return;
    const secs = (recording.ms / 1000).toFixed(1);
    if (this.downloadUrl) URL.revokeObjectURL(this.downloadUrl);
    this.downloadUrl = URL.createObjectURL(wavBlob(recording.chunks, recording.sampleRate));
    this.el.download.href = this.downloadUrl;
    this.el.download.textContent = recording.truncated ? "Download WAV (first 10 min)" : `Download WAV (${secs} s)`;
    this.shown = { cut: outcome !== "completed", receivedMs: (1000 * this.peaks.samples) / recording.sampleRate };
    this.el.wave.hidden = false;
    this.#mark(playedMs);
  }

  // The player's last position report after a cut lands a moment later: move the mark to it.
  settle(playedMs) {
    if (this.shown && this.shown.cut && !this.el.wave.hidden && Math.abs(playedMs - this.shown.playedMs) > 1) {
      this.#mark(playedMs);
    }
  }

  #mark(playedMs) {
    const { cut, receivedMs } = this.shown;
    this.shown.playedMs = playedMs;
    this.heardUntil = !cut || receivedMs <= 0 ? 1 : Math.min(1, playedMs / receivedMs);
    const heardPart = this.heardUntil < 1 ? `; heard ${(playedMs / 1000).toFixed(1)} s, the faint rest was not` : "";
    this.el.caption.textContent = `${(receivedMs / 1000).toFixed(1)} s received${heardPart}`;
    this.el.canvas.setAttribute("aria-label", `Waveform of the last response: ${this.el.caption.textContent}`);
    this.#draw();
  }

  #draw() {
    this.drawn = drawWaveform(this.el.canvas, this.peaks, { heardUntil: this.heardUntil });
  }

  #showKind() {
    const kind = this.timed ? this.words.kind : "http";
    this.el.timing.textContent = kind === "http" ? "no word timings over HTTP" : KIND_TEXT[kind];
    this.el.timing.dataset.kind = kind;
  }
}
