// Client of GET /v1/audio/speech/ws: JSON events both ways, binary s16le PCM from the server.
// One connection carries many responses; audio is accepted only inside a live response, so
// frames of a cancelled response that were already in flight are dropped, never played.

import { wsUrl } from "./api.js";

const PATH = "/v1/audio/speech/ws";

export class SpeechSocket {
  constructor({ onEvent = () => {}, onAudio = () => {}, onClose = () => {} } = {}) {
    this.onEvent = onEvent;
    this.onAudio = onAudio;
    this.onClose = onClose;
    this.ws = null;
    this.opening = null;
    this.session = null;
    this.responseId = null; // the live response; audio outside one is dropped
    this.droppedFrames = 0;
    this.customVoice = false; // a voice was set on this session (cannot be unset by update)
    this.pinnedBackend = false; // a backend was set on this session (nor can it)
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  // Resolves once the socket is open (reuses a live one).
  connect() {
    if (this.open) return Promise.resolve();
    if (this.opening) return this.opening;
    this.opening = new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl(PATH));
      ws.binaryType = "arraybuffer";
      ws.onopen = () => {
        this.ws = ws;
        this.opening = null;
        resolve();
      };
      ws.onerror = () => {
        // The close event follows and carries the details; reject a pending connect here.
        if (this.opening) {
          this.opening = null;
          reject(new Error("could not connect to the speech WebSocket"));
        }
      };
      ws.onclose = (e) => {
        if (this.ws !== ws) return; // a socket we already replaced or gave up on
        this.ws = null;
        this.responseId = null;
        this.onClose(e);
      };
      ws.onmessage = (e) => this.#message(e.data);
    });
    return this.opening;
  }

  send(event) {
    if (!this.open) throw new Error("the speech WebSocket is not open");
    this.ws.send(JSON.stringify(event));
  }

  // Start a response: session settings, then the text, then the end of input.
  speak(text, session) {
    this.send({ type: "session.update", session });
    if (session.voice) this.customVoice = true;
    if (session.backend) this.pinnedBackend = true;
    this.send({ type: "input_text.append", text });
    this.send({ type: "input_text.done" });
  }

  cancel() {
    this.responseId = null; // stop accepting audio at once, before the server confirms
    if (this.open) this.send({ type: "response.cancel" });
  }

  report(playedMs, bufferMs) {
    if (this.open) {
      this.send({ type: "playback.report", played_ms: Math.round(playedMs), buffer_ms: Math.round(bufferMs) });
    }
  }

  // Closing forgets the session: the next connect() starts a fresh one.
  close() {
    const ws = this.ws;
    this.ws = null;
    this.session = null;
    this.responseId = null;
    this.customVoice = false;
    this.pinnedBackend = false;
    if (ws) ws.close(1000);
  }

  #message(data) {
    if (typeof data !== "string") {
      if (this.responseId !== null) this.onAudio(data);
      else this.droppedFrames += 1;
      return;
    }
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return; // the server only sends JSON text; ignore anything else rather than break
    }
    if (event.type === "response.created") this.responseId = event.response_id ?? true;
    if (event.type === "session.created" || event.type === "session.updated") this.session = event.session;
    if (event.type === "response.done" && (event.response_id === undefined || event.response_id === this.responseId)) {
      this.responseId = null;
    }
    this.onEvent(event);
  }
}
