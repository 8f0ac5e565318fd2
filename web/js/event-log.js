// A bounded log of server events: kept in an array (for people and tests) and shown in a list,
// with the page's own notes in between (shown only).

const KEEP = 200;

export function makeEventLog(listEl, shownMax = 60) {
  const events = [];
  function show(text, className) {
    const li = document.createElement("li");
    li.textContent = text;
    if (className) li.className = className;
    listEl.prepend(li);
    while (listEl.childElementCount > shownMax) listEl.lastElementChild.remove();
  }
  function log(ev) {
    events.push({ t_ms: Math.round(performance.now()), ...ev });
    if (events.length > KEEP) events.splice(0, events.length - KEEP);
    const { type, ...rest } = ev;
    show(`${type} ${JSON.stringify(rest)}`);
  }
  // A line for people: what the page made of the events.
  const note = (text) => show(text, "note");
  return { events, log, note };
}
