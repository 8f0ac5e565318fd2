// A bounded log of server events: kept in an array (for people and tests) and shown in a list.

const KEEP = 200;

export function makeEventLog(listEl, shownMax = 60) {
  const events = [];
  function log(ev) {
    events.push({ t_ms: Math.round(performance.now()), ...ev });
    if (events.length > KEEP) events.splice(0, events.length - KEEP);
    const li = document.createElement("li");
    const { type, ...rest } = ev;
    li.textContent = `${type} ${JSON.stringify(rest)}`;
    listEl.prepend(li);
    while (listEl.childElementCount > shownMax) listEl.lastElementChild.remove();
  }
  return { events, log };
}
