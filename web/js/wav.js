// A complete WAV file (true sizes) from s16le mono PCM chunks, for the download link.

export function wavBlob(chunks, sampleRate) {
  let samples = 0;
  for (const c of chunks) samples += c.length;
  const dataBytes = samples * 2;
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) header.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF");
  header.setUint32(4, 36 + dataBytes, true);
  text(8, "WAVE");
  text(12, "fmt ");
  header.setUint32(16, 16, true); // fmt chunk size
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, sampleRate, true);
  header.setUint32(28, sampleRate * 2, true); // byte rate
  header.setUint16(32, 2, true); // block align
  header.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  header.setUint32(40, dataBytes, true);
  // Blob parts are copied as bytes; Int16Array is little-endian on every platform browsers run on.
  return new Blob([header, ...chunks], { type: "audio/wav" });
}
