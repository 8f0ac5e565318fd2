// A response's text as words on the page, following the audio: the server's `response.word`
// timings (ms of the response's audio) are matched to the words of the text that was sent, the
// word being heard is highlighted from the player's own played position, and when the audio is
// cut off, `heard_text` splits the text into what the listener heard and the unheard rest.

const MATCH_AHEAD = 32; // a timed word is looked for this many words ahead of the last match

// Compare words the way a reader would: case and punctuation aside.
const norm = (w) => w.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, "");
const same = (a, b) => {
  const na = norm(a);
  const nb = norm(b);
  return na || nb ? na === nb : a === b;
};

export class WordTrack {
  constructor(container) {
    this.container = container;
    this.tokens = []; // the text's words, one <span> each, in order
    this.timeline = []; // {start_ms, end_ms, exact, token} in arrival (= time) order
    this.matched = 0; // tokens before this one are taken by earlier timed words
    this.current = -1; // index into timeline of the highlighted word
    this.spoken = 0; // tokens before this one are marked spoken
    this.exactCount = 0;
  }

  // A new response speaking `text`: one span per word, the whitespace kept as it was typed.
  begin(text) {
    this.tokens = [];
    this.timeline = [];
    this.matched = 0;
    this.current = -1;
    this.spoken = 0;
    this.exactCount = 0;
    const nodes = [];
    for (const part of text.split(/(\s+)/)) {
      if (!part) continue;
      if (/^\s/.test(part)) {
        nodes.push(document.createTextNode(part));
        continue;
      }
      const span = document.createElement("span");
      span.className = "w";
      span.textContent = part;
      this.tokens.push(span);
      nodes.push(span);
    }
    this.container.replaceChildren(...nodes);
    this.container.scrollTop = 0;
  }

  // A `response.word` event: a word of the text as typed ("$12.50"), with what the server's
  // text front end had the engine say for it (`spoken`: "twelve dollars and fifty cents")
  // when that differs. A word the text does not have keeps its time but highlights nothing.
  add({ text, start_ms, end_ms, exact, spoken }) {
    const token = this.#find(text, this.matched);
    if (token !== null) {
      this.matched = token + 1;
      const span = this.tokens[token];
      span.dataset.startMs = String(start_ms);
      span.dataset.endMs = String(end_ms);
      span.dataset.timing = exact ? "exact" : "estimated";
      if (spoken && spoken !== text) span.dataset.spoken = spoken;
    }
    this.timeline.push({ start_ms, end_ms, exact: Boolean(exact), token });
    if (exact) this.exactCount += 1;
  }

  // "exact", "estimated", "mixed" (a failover between engines), or "none" (no timings yet).
  get kind() {
    const n = this.timeline.length;
    if (n === 0) return "none";
    if (this.exactCount === n) return "exact";
    return this.exactCount === 0 ? "estimated" : "mixed";
  }

  // Highlight the word being heard at `playedMs`: the last one that has started (so the
  // highlight stays put through the pause after a word, never jumps ahead of the audio).
  follow(playedMs) {
    let lo = 0;
    let hi = this.timeline.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.timeline[mid].start_ms <= playedMs) lo = mid + 1;
      else hi = mid;
    }
    const index = lo - 1;
    if (index === this.current) return;
    this.#setCurrent(index);
  }

  // The whole response was heard.
  complete() {
    this.#setCurrent(-1);
    this.#markSpoken(this.tokens.length);
  }

  // The audio stopped: `heardText` (the server's heard_text) is what the listener heard in
  // full. Returns the numbers of heard and unheard words.
  cut(heardText) {
    this.#setCurrent(-1);
    let heard = 0;
    let at = 0;
    for (const word of heardText.split(/\s+/).filter(Boolean)) {
      const token = this.#find(word, at);
      if (token === null) break;
      heard = token + 1;
      at = heard;
    }
    this.tokens.forEach((span, i) => {
      span.classList.remove("spoken");
      span.classList.toggle("heard", i < heard);
      span.classList.toggle("unheard", i >= heard);
    });
    this.spoken = heard;
    return { heard, unheard: this.tokens.length - heard };
  }

  #find(word, from) {
    const last = Math.min(this.tokens.length, from + MATCH_AHEAD);
    for (let i = from; i < last; i++) if (same(this.tokens[i].textContent, word)) return i;
    return null;
  }

  #setCurrent(index) {
    const prev = this.current >= 0 ? this.timeline[this.current].token : null;
    if (prev !== null) this.tokens[prev].removeAttribute("aria-current");
    this.current = index;
    const token = index >= 0 ? this.timeline[index].token : null;
    if (token === null) return;
    this.#markSpoken(token);
    const span = this.tokens[token];
    span.setAttribute("aria-current", "true");
    this.#reveal(span);
  }

  #markSpoken(upTo) {
    for (let i = this.spoken; i < upTo; i++) this.tokens[i].classList.add("spoken");
    this.spoken = Math.max(this.spoken, upTo);
  }

  // Keep the word in view inside the box, without scrolling the page (the box is
  // position: relative, so it is the span's offsetParent).
  #reveal(span) {
    const box = this.container;
    const top = span.offsetTop;
    if (top < box.scrollTop || top + span.offsetHeight > box.scrollTop + box.clientHeight) {
      box.scrollTop = Math.max(0, top - box.clientHeight / 3);
    }
  }
}
