// The waveform of a response, kept small: a min/max summary built as the audio arrives (never
// the samples themselves), drawn on a <canvas> one peak per pixel column.

import { fitCanvas } from "./canvas.js";

const MAX_BINS = 4096; // memory is bounded by this, however long the response
const FIRST_SAMPLES_PER_BIN = 32; // ~1.3 ms at 24 kHz: short responses still draw finely

export class PeakSummary {
  constructor({ maxBins = MAX_BINS, samplesPerBin = FIRST_SAMPLES_PER_BIN } = {}) {
    this.maxBins = maxBins - (maxBins % 2);
    this.firstSamplesPerBin = samplesPerBin;
    this.min = new Int16Array(this.maxBins);
    this.max = new Int16Array(this.maxBins);
    this.reset();
  }

  reset() {
    this.samplesPerBin = this.firstSamplesPerBin;
    this.bins = 0; // complete bins; bin `bins` is the open one
    this.fill = 0; // samples in the open bin
    this.samples = 0;
  }

  // s16 samples, as they arrive.
  add(samples) {
    const { min, max } = this;
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i];
      const b = this.bins;
      if (this.fill === 0) {
        min[b] = s;
        max[b] = s;
      } else if (s < min[b]) min[b] = s;
      else if (s > max[b]) max[b] = s;
      if (++this.fill === this.samplesPerBin) {
        this.fill = 0;
        if (++this.bins === this.maxBins) this.#halve();
      }
    }
    this.samples += samples.length;
  }

  // Full: every two bins become one, twice as wide.
  #halve() {
    const { min, max } = this;
    const half = this.bins / 2;
    for (let i = 0; i < half; i++) {
      min[i] = Math.min(min[2 * i], min[2 * i + 1]);
      max[i] = Math.max(max[2 * i], max[2 * i + 1]);
    }
    this.bins = half;
    this.samplesPerBin *= 2;
  }

  // Bins with data, the open one included.
  get count() {
    return this.bins + (this.fill > 0 ? 1 : 0);
  }
}

// Draws `summary` across the canvas; audio after `heardUntil` (a fraction 0..1 of the audio,
// or 1) is drawn faint: it was received but the listener never heard it.
// Returns the number of pixel columns with ink.
export function drawWaveform(canvas, summary, { heardUntil = 1 } = {}) {
  const { g, w, h, dpr, style } = fitCanvas(canvas);
  const color = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  g.fillStyle = color("--plot-grid", "#ccc");
  g.fillRect(0, Math.floor(h / 2), w, Math.max(1, Math.round(dpr))); // the zero line
  const n = summary.count;
  if (n === 0) return 0;
  const heard = color("--plot-line", "#06c");
  const unheard = color("--plot-faint", "#9aa");
  const y = (v) => h / 2 - (v / 32768) * (h / 2);
  const cut = heardUntil * w;
  let inked = 0;
  for (let x = 0; x < w; x++) {
    const first = Math.floor((x * n) / w);
    const end = Math.max(first + 1, Math.floor(((x + 1) * n) / w));
    let lo = 32767;
    let hi = -32768;
    for (let b = first; b < end && b < n; b++) {
      if (summary.min[b] < lo) lo = summary.min[b];
      if (summary.max[b] > hi) hi = summary.max[b];
    }
    if (hi < lo) continue;
    const top = Math.floor(y(hi));
    const height = Math.max(1, Math.ceil(y(lo)) - top);
    g.fillStyle = x < cut ? heard : unheard;
    g.fillRect(x, top, 1, height);
    inked += 1;
  }
  return inked;
}
