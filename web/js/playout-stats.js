// What the browser has played of Morpheus's WebRTC voice, from getStats(): the playback.report
// the server paces by and computes heard_text from, and the figures the agent page shows.

const RATE_HZ = 48000; // Opus decodes at 48 kHz in every browser

export class PlayoutStats {
  constructor() {
    this.prev = null; // the previous inbound-rtp audio stats
    this.bufferMs = 0;
  }

  // {report, jitterMs, concealedPct, receivedS, lost}, or null before audio is received.
  async read(pc) {
    const stats = await pc.getStats();
    let inbound = null;
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") inbound = s;
    });
    if (!inbound) return null;
    const prev = this.prev;
    this.prev = inbound;
    const delta = (key) => (prev ? (inbound[key] ?? 0) - (prev[key] ?? 0) : 0);
    const emitted = delta("jitterBufferEmittedCount");
    if (emitted > 0) this.bufferMs = (1000 * delta("jitterBufferDelay")) / emitted;
    else if (!prev) this.bufferMs = 0;
    const total = delta("totalSamplesReceived");
    const concealed = delta("concealedSamples") - delta("silentConcealedSamples");
    return {
      report: {
        type: "playback.report",
        played_ms: Math.round((1000 * (inbound.totalSamplesReceived ?? 0)) / RATE_HZ),
        buffer_ms: Math.round(this.bufferMs),
        concealed_samples: inbound.concealedSamples ?? 0,
        total_samples_received: inbound.totalSamplesReceived ?? 0,
      },
      jitterMs: this.bufferMs,
      concealedPct: total > 0 ? (100 * concealed) / total : 0,
      receivedS: (inbound.totalSamplesReceived ?? 0) / RATE_HZ,
      lost: inbound.packetsLost ?? 0,
    };
  }
}
