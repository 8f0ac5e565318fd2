// The live performance panel: /ws/perf snapshots (4 per second) drawn as one-minute plots,
// plus a row per stream the server is running (every client's, not only this page's).

import { wsUrl } from "./api.js";
import { Sparkline } from "./sparkline.js";

const WINDOW_MS = 60000;
const RECONNECT_MAX_MS = 5000;

const newest = (streams) => (streams.length ? streams[streams.length - 1] : null);
const maxOf = (streams, key) => {
  const vals = streams.map((s) => s[key]).filter((v) => Number.isFinite(v));
  return vals.length ? Math.max(...vals) : null;
};

// key -> how to read it from a snapshot, how to print it, the smallest y-axis ceiling.
const METRICS = {
  active: { read: (s) => s.active_streams, fmt: (v, s) => `${v}${s.queued ? ` (+${s.queued} queued)` : ""}`, ceiling: 1 },
  buffer: { read: (s) => maxOf(s.streams, "buffer_ms"), fmt: (v) => `${Math.round(v)} ms`, ceiling: 500 },
  chunk: { read: (s) => newest(s.streams)?.chunk_size ?? null, fmt: (v) => `${Math.round(v)}`, ceiling: 10 },
  ttfa: { read: (s) => newest(s.streams)?.ttft_ms ?? null, fmt: (v) => `${Math.round(v)} ms`, ceiling: 200, hold: true },
  rtf: { read: (s) => newest(s.streams)?.rtf ?? null, fmt: (v) => v.toFixed(2), ceiling: 1, hold: true },
  underflows: { read: (s) => s.totals?.underflows ?? 0, fmt: (v) => `${v}`, ceiling: 1 },
  failovers: { read: (s) => s.totals?.failovers ?? 0, fmt: (v) => `${v}`, ceiling: 1 },
  barge_ins: { read: (s) => s.totals?.barge_ins ?? 0, fmt: (v) => `${v}`, ceiling: 1 },
};

const cell = (text) => {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
};
const idCell = (id) => {
  const td = cell(id.replace(/^resp_/, "").slice(0, 8)); // short, unique enough to follow by eye
  td.title = id;
  td.className = "mono";
  return td;
};
const num = (v, digits = 0, unit = "") => (Number.isFinite(v) ? `${v.toFixed(digits)}${unit}` : "–");

export class PerfPanel {
  constructor(root) {
    this.root = root;
    this.frames = 0;
    this.last = null;
    this.lastValues = {};
    this.ws = null;
    this.retryMs = 500;
    this.stopped = false;
    this.plots = {};
    for (const key of Object.keys(METRICS)) {
      const canvas = root.querySelector(`[data-metric="${key}"] canvas`);
      this.plots[key] = new Sparkline(canvas, { windowMs: WINDOW_MS, minCeiling: METRICS[key].ceiling });
    }
    this.el = {
      conn: root.querySelector("#perf-conn"),
      backend: root.querySelector("#perf-backend"),
      state: root.querySelector("#perf-state"),
      rows: root.querySelector("#perf-streams tbody"),
      empty: root.querySelector("#perf-empty"),
    };
  }

  start() {
    this.stopped = false;
    const ws = new WebSocket(wsUrl("/ws/perf"));
    this.ws = ws;
    ws.onopen = () => {
      this.retryMs = 500;
      this.el.conn.textContent = "live";
      this.el.conn.dataset.state = "live";
    };
    ws.onmessage = (e) => {
      try {
        this.update(JSON.parse(e.data));
      } catch (err) {
        console.warn("bad perf frame", err);
      }
    };
    ws.onclose = () => {
      this.el.conn.textContent = "disconnected, retrying";
      this.el.conn.dataset.state = "down";
      if (!this.stopped) {
        setTimeout(() => this.start(), this.retryMs);
        this.retryMs = Math.min(RECONNECT_MAX_MS, this.retryMs * 2);
      }
    };
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close();
  }

  update(snap) {
    snap.streams = Array.isArray(snap.streams) ? snap.streams : [];
    this.frames += 1;
    this.last = snap;
    const now = performance.now();
    for (const [key, m] of Object.entries(METRICS)) {
      let v = m.read(snap);
      if (v === null && m.hold && this.lastValues[key] !== undefined) v = this.lastValues[key];
      this.plots[key].add(now, v);
      this.plots[key].draw(now);
      const out = this.root.querySelector(`[data-metric="${key}"] .value`);
      out.textContent = Number.isFinite(v) ? m.fmt(v, snap) : "–";
      if (Number.isFinite(v)) this.lastValues[key] = v;
    }
    this.el.backend.textContent = snap.backend ?? "–";
    const current = newest(snap.streams);
    this.el.state.textContent = current ? current.state : "idle";
    this.#rows(snap.streams);
  }

  #rows(streams) {
    const rows = streams.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.streamId = s.id;
      tr.append(
        idCell(String(s.id)),
        cell(s.transport ?? "–"),
        cell(s.backend + (s.degraded ? " (degraded)" : "")),
        cell(s.voice ?? "–"),
        cell(s.state ?? "–"),
        cell(num(s.buffer_ms, 0, " ms")),
        cell(num(s.chunk_size)),
        cell(num(s.ttft_ms, 0, " ms")),
        cell(num(s.rtf, 2)),
        cell(num(s.underflows)),
        cell(num(s.audio_ms / 1000, 1, " s")),
      );
      return tr;
    });
    this.el.rows.replaceChildren(...rows);
    this.el.empty.hidden = rows.length > 0;
  }
}
