// AudioWorklet side of the PCM player: a ring buffer of float samples played at the context rate.
// The main thread posts s16le chunks; this thread reports what it has really played.

const REPORT_EVERY_S = 0.05; // playback position reports, 20 per second

class PcmPlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const capacity = (options.processorOptions && options.processorOptions.capacity) || sampleRate * 30;
    this.ring = new Float32Array(capacity);
    this.readPos = 0;
    this.count = 0; // samples buffered
    this.playedFrames = 0; // samples of real audio played since the last reset
    this.underruns = 0; // times the buffer ran dry while audio was expected
    this.overflowFrames = 0; // samples dropped because the ring was full (should stay 0)
    this.expecting = false; // between the first chunk of a response and its end
    this.starved = false;
    this.sinceReport = 0;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(msg) {
    if (msg.type === "push") {
      this.write(new Int16Array(msg.pcm));
      this.expecting = true;
    } else if (msg.type === "flush") {
      // Drop everything queued: a cancel must silence the output within one render quantum.
      this.count = 0;
      this.expecting = false;
      this.report();
    } else if (msg.type === "end") {
      this.expecting = false; // the rest of the queue drains; running dry now is not an underrun
    } else if (msg.type === "reset") {
      this.count = 0;
      this.playedFrames = 0;
      this.underruns = 0;
      this.overflowFrames = 0;
      this.expecting = false;
      this.report();
    }
  }

  write(samples) {
    const cap = this.ring.length;
    let n = samples.length;
    if (n > cap - this.count) {
      this.overflowFrames += n - (cap - this.count);
      n = cap - this.count;
    }
    let w = (this.readPos + this.count) % cap;
    for (let i = 0; i < n; i++) {
      this.ring[w] = samples[i] / 32768;
      w = w + 1 === cap ? 0 : w + 1;
    }
    this.count += n;
  }

  report() {
    this.sinceReport = 0;
    this.port.postMessage({
      type: "state",
      playedFrames: this.playedFrames,
      bufferedFrames: this.count,
      underruns: this.underruns,
      overflowFrames: this.overflowFrames,
    });
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const n = out.length;
    const take = Math.min(n, this.count);
    const cap = this.ring.length;
    let r = this.readPos;
    for (let i = 0; i < take; i++) {
      out[i] = this.ring[r];
      r = r + 1 === cap ? 0 : r + 1;
    }
    for (let i = take; i < n; i++) out[i] = 0;
    this.readPos = r;
    this.count -= take;
    this.playedFrames += take;
    if (take < n && this.expecting) {
      // Count each time the queue runs dry mid-response, not every silent quantum after it.
      if (!this.starved) this.underruns += 1;
      this.starved = true;
    } else if (take === n) {
      this.starved = false;
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.sinceReport += n;
    if (this.sinceReport >= sampleRate * REPORT_EVERY_S || (take > 0 && this.count === 0)) this.report();
    return true;
  }
}

registerProcessor("pcm-player", PcmPlayerProcessor);
