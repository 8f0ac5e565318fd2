// Level metering shared by both pages: RMS of an AnalyserNode's current window, in dBFS.

export const SILENCE_DBFS = -120;

export function makeLevelReader(analyser) {
  const buf = new Float32Array(analyser.fftSize);
  return function levelDbfs() {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
    const rms = Math.sqrt(sum / buf.length);
    return rms > 0 ? Math.max(SILENCE_DBFS, 20 * Math.log10(rms)) : SILENCE_DBFS;
  };
}

// Maps -60..0 dBFS to 0..1 for a <meter>.
export function meterValue(dbfs) {
  return Math.min(1, Math.max(0, (dbfs + 60) / 60));
}
