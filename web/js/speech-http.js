// POST /v1/audio/speech with response_format=pcm and stream=true, fed to the player as it arrives.
// Aborting the fetch closes the connection, which stops the synthesis on the server.

import { apiFetch } from "./api.js";

export async function speakHttp(body, { signal, onHeaders = () => {}, onAudio = () => {} }) {
  const response = await apiFetch("/v1/audio/speech", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...body, response_format: "pcm", stream: true }),
    signal,
  });
  const headers = {
    requestId: response.headers.get("X-Request-ID"),
    backend: response.headers.get("X-Backend"),
    degraded: response.headers.get("X-Degraded"),
    sampleRate: Number(response.headers.get("X-Sample-Rate")) || null,
  };
  onHeaders(headers, response.status);
  if (!response.ok) {
    const err = await response.json().catch(() => ({}));
    const detail = err.error || err;
    throw new Error((detail && detail.message) || `${response.status} ${response.statusText}`);
  }
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (value.byteLength) onAudio(value);
  }
  return headers;
}
