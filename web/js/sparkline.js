// A small live plot on a <canvas>: one series over a fixed time window, no libraries.

import { fitCanvas } from "./canvas.js";

export class Sparkline {
  constructor(canvas, { windowMs = 60000, minCeiling = 1 } = {}) {
    this.canvas = canvas;
    this.windowMs = windowMs;
    this.minCeiling = minCeiling; // the y axis never shrinks below this (so noise stays flat)
    this.points = []; // [t_ms, value|null]
  }

  add(tMs, value) {
    this.points.push([tMs, Number.isFinite(value) ? value : null]);
    const cutoff = tMs - this.windowMs;
    let drop = 0;
    while (drop < this.points.length && this.points[drop][0] < cutoff) drop++;
    if (drop) this.points.splice(0, drop);
  }

  draw(nowMs) {
    const { g, w, h, dpr, style } = fitCanvas(this.canvas);
    let max = this.minCeiling;
    for (const [, v] of this.points) if (v !== null && v > max) max = v;
    const pad = 2 * dpr;
    const x = (t) => w - ((nowMs - t) / this.windowMs) * w;
    const y = (v) => h - pad - (v / max) * (h - 2 * pad);
    // Baseline, so an all-zero series is still visibly a plot.
    g.strokeStyle = style.getPropertyValue("--plot-grid").trim() || "#ccc";
    g.lineWidth = dpr;
    g.beginPath();
    g.moveTo(0, h - pad);
    g.lineTo(w, h - pad);
    g.stroke();
    g.strokeStyle = style.getPropertyValue("--plot-line").trim() || "#06c";
    g.lineWidth = 1.5 * dpr;
    g.beginPath();
    let pen = false;
    for (const [t, v] of this.points) {
      if (v === null) {
        pen = false;
        continue;
      }
      if (pen) g.lineTo(x(t), y(v));
      else g.moveTo(x(t), y(v));
      pen = true;
    }
    g.stroke();
    return max;
  }
}
