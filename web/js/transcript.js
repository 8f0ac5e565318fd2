// The agent page's transcript: each reply Morpheus was asked to say, and when the caller cut it
// off (barge-in) or it was stopped, what the caller had heard of it (the server's heard_text)
// with the unheard rest struck out: the history a voice agent keeps.

import { WordTrack } from "./word-track.js";

const KEEP_TURNS = 20;

export class Transcript {
  constructor(listEl) {
    this.list = listEl;
    this.queued = []; // texts sent, waiting for their response.created
    this.turns = new Map(); // response_id -> {li, track, outcome, words, cut}
  }

  // Text was sent for Morpheus to say; one response will speak it.
  queue(text) {
    this.queued.push(text);
  }

  // A cancel drops text the server had kept for the next response.
  dropQueued() {
    this.queued = [];
  }

  begin(responseId) {
    const text = this.queued.shift() ?? "";
    const li = document.createElement("li");
    li.className = "turn";
    li.dataset.responseId = responseId;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = "Morpheus";
    const words = document.createElement("p");
    words.className = "words";
    const outcome = document.createElement("p");
    outcome.className = "hint outcome";
    outcome.textContent = "speaking…";
    li.append(who, words, outcome);
    const track = new WordTrack(words);
    track.begin(text);
    this.#append(li);
    this.turns.set(responseId, { li, track, outcome, cut: null });
  }

  // The caller's audio was cut at `playedMs`; `how`: "barge-in" or "stop".
  // Returns {heard, unheard} word counts, or null for a response not shown here.
  cut(responseId, heardText, playedMs, how) {
    const turn = this.turns.get(responseId);
    if (!turn) return null;
    const counts = turn.track.cut(heardText);
    turn.cut = { how, ...counts };
    turn.li.dataset.outcome = how;
    const who = how === "barge-in" ? "Interrupted by you" : "Stopped";
    const secs = Number.isFinite(playedMs) ? ` after ${(playedMs / 1000).toFixed(1)} s` : "";
    turn.outcome.textContent = `${who}${secs}: you heard ${counts.heard} of ${counts.heard + counts.unheard} words.`;
    if (how === "barge-in") this.#append(this.#callerTurn());
    return counts;
  }

  // response.done: a reply that was not cut off ends here.
  end(responseId, status) {
    const turn = this.turns.get(responseId);
    if (!turn || turn.cut) return;
    turn.li.dataset.outcome = status;
    if (status === "completed") {
      turn.track.complete();
      turn.outcome.textContent = "Said in full.";
    } else {
      turn.outcome.textContent = `Ended: ${status}.`;
    }
  }

  #callerTurn() {
    const li = document.createElement("li");
    li.className = "turn caller";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = "You";
    const what = document.createElement("p");
    what.className = "hint";
    what.textContent = "spoke over Morpheus (barge-in)";
    li.append(who, what);
    return li;
  }

  #append(li) {
    this.list.append(li);
    while (this.list.childElementCount > KEEP_TURNS) {
      const first = this.list.firstElementChild;
      if (first.dataset.responseId) this.turns.delete(first.dataset.responseId);
      first.remove();
    }
  }
}
