"""The voice-agent page in a real Chromium over WebRTC on loopback: speech out, barge-in from the
mic, and what the caller had heard of the reply when they cut it off."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Tab

AUDIBLE_DBFS = -45.0
SILENT_DBFS = -55.0

# The microphone, faked with Web Audio so the test decides exactly when the caller speaks:
# getUserMedia returns a MediaStreamDestination that carries silence until `speak()` plays a
# recording of real speech into it (made by Morpheus itself, with espeak, so it is a voice
# different from the one it interrupts).
FAKE_MIC = """
(() => {
  const mic = { ctx: null, dest: null, buffer: null, startedAt: null };
  window.__fakeMic = mic;
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    if (!constraints || !constraints.audio || constraints.video) {
      throw new DOMException("the fake microphone only does audio", "NotSupportedError");
    }
    mic.ctx = new AudioContext({ sampleRate: 48000 });
    await mic.ctx.resume();
    mic.dest = mic.ctx.createMediaStreamDestination();
    mic.dest.channelCount = 1;
    return mic.dest.stream;
  };
  mic.load = async (text) => {
    const r = await fetch("/v1/audio/speech", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ input: text, backend: "espeak", response_format: "wav", stream: false }),
    });
    if (!r.ok) throw new Error("could not make the caller's speech: " + r.status);
    mic.buffer = await mic.ctx.decodeAudioData(await r.arrayBuffer());
    return mic.buffer.duration;
  };
  mic.speak = () => {
    const src = mic.ctx.createBufferSource();
    src.buffer = mic.buffer;
    src.connect(mic.dest);
    src.start();
    mic.startedAt = performance.now();
    return mic.startedAt;
  };
})();
"""

# Records the loudest remote level from now on, sampled every 5 ms in the page.
WATCH_REMOTE = """() => {
  window.__watch = { max: -120 };
  const iv = setInterval(() => {
    window.__watch.max = Math.max(window.__watch.max, window.__morpheus.level());
  }, 5);
  setTimeout(() => clearInterval(iv), 10000);
}"""


def connect(tab: Tab) -> None:
    t0 = time.monotonic()
    tab.page.click("#connect")
    tab.wait_for("() => window.__morpheus.channelOpen()", 15, "the events channel to open")
    print(f"\nagent: connected in {1000 * (time.monotonic() - t0):.0f} ms")
    assert tab.page.inner_text("#conn-state") == "connected"
    # The offer went out with loopback candidates only (the conftest route strips the rest).
    assert len(tab.offers) == 1
    candidates = [ln for ln in tab.offers[0].split("\r\n") if ln.startswith("a=candidate")]
    assert candidates and all(" 127.0.0.1 " in ln for ln in candidates), candidates
    tab.wait_for("() => window.__morpheus.connectionState() === 'connected'", 5)


def event_types(tab: Tab) -> list[str]:
    return tab.js("() => window.__morpheus.events.map((e) => e.type)")


TURNS = """() => [...document.querySelectorAll('#transcript li')].map((li) => ({
  cls: li.className, outcome: li.dataset.outcome || null,
  heard: [...li.querySelectorAll('.w.heard')].map((w) => w.textContent),
  unheard: [...li.querySelectorAll('.w.unheard')].map((w) => w.textContent),
  text: li.innerText}))"""


def test_caller_speaking_over_morpheus_silences_it_and_the_page_shows_the_barge_in(open_tab):
    tab = open_tab("/agent", init_script=FAKE_MIC)
    connect(tab)
    duration_s = tab.js("(t) => window.__fakeMic.load(t)", "Wait, stop please, I have a question.")
    assert duration_s > 1.0

    tab.page.click("#speak")
    tab.wait_for(f"() => window.__morpheus.level() > {AUDIBLE_DBFS}", 10, "Morpheus's voice")
    time.sleep(1.0)  # it talks for a second before the caller cuts in
    assert tab.js("() => window.__morpheus.speaking()")
    tab.wait_for("() => window.__morpheus.reportsSent() >= 3", 10, "getStats reports (~5/s)")
    assert tab.page.inner_text("#stat-jitter").endswith("ms")

    spoke_at = tab.js("() => window.__fakeMic.speak()")
    tab.wait_for("() => window.__morpheus.bargeIns.some((b) => b.interrupted)", 5,
                 "input_audio_buffer.speech_started")
    tab.wait_for("() => window.__morpheus.bargeIns.at(-1).stop_after_event_ms !== null", 5,
                 "the remote audio to go silent")
    record = tab.js("() => window.__morpheus.bargeIns.at(-1)")
    heard_ms, silent_ms = record["at_ms"] - spoke_at, record["silent_at_ms"] - spoke_at
    print(f"agent: the caller started speaking; speech_started arrived after {heard_ms:.0f} ms, "
          f"Morpheus was silent after {silent_ms:.0f} ms (page shows {record['stop_after_mic_ms']} ms)")
    assert 0 < heard_ms < 1000
    assert 0 < silent_ms < 1000  # target p50 250 ms; loose for a busy 2-core CI box
    assert record["stop_after_mic_ms"] is not None  # the page measured it from the mic too

    # It stays quiet: no stale audio after the cut.
    tab.js(WATCH_REMOTE)
    time.sleep(1.0)
    assert tab.js("() => window.__watch.max") < SILENT_DBFS
    assert not tab.js("() => window.__morpheus.speaking()")
    assert tab.js("() => window.__morpheus.bargeIns.at(-1).silent_at_ms") == record["silent_at_ms"]

    # What the page shows a person.
    assert tab.page.get_attribute("#bargein", "data-active") == "true"
    assert tab.page.inner_text("#bargein-title") == "Barge-in: Morpheus stopped talking"
    assert tab.page.inner_text("#bi-count") == "1"
    assert tab.page.inner_text("#bi-stop").endswith(" ms")
    types = event_types(tab)
    i = types.index("input_audio_buffer.speech_started")
    assert "output_audio_buffer.cleared" in types[i:], types
    done = tab.js("() => window.__morpheus.events.filter((e) => e.type === 'response.done')")
    assert done[-1]["status"] == "cancelled"
    assert "error" not in types, tab.js("() => window.__morpheus.events")

    # What the caller had heard of the reply: the server's heard_text, a prefix of what was
    # said, shown in the barge-in box, the transcript (the rest struck out) and the event log.
    said = tab.page.input_value("#say").split()
    cleared = next(e for e in tab.js("() => window.__morpheus.events")
                   if e["type"] == "output_audio_buffer.cleared")
    heard = cleared["heard_text"].split()
    assert heard and heard == said[: len(heard)] and len(heard) < len(said), cleared
    assert done[-1]["heard_text"] == cleared["heard_text"]
    assert tab.js("() => window.__morpheus.bargeIns.at(-1).heard_text") == cleared["heard_text"]
    assert f"“{cleared['heard_text']}”" in tab.page.inner_text("#bargein-heard")
    assert tab.page.inner_text("#bi-words") == f"{len(heard)} of {len(said)}"
    turns = tab.js(TURNS)
    reply = turns[-2]
    assert reply["outcome"] == "barge-in" and reply["heard"] == heard
    assert reply["unheard"] == said[len(heard):]
    assert "Interrupted by you" in reply["text"]
    assert "caller" in turns[-1]["cls"]  # the caller's turn follows the reply they cut off
    log = tab.js("() => [...document.querySelectorAll('#event-log li.note')].map((li) => li.textContent)")
    assert any(cleared["heard_text"] in line and line.startswith("barge-in") for line in log), log
    tab.screenshot("agent")

    tab.page.click("#hangup")
    assert tab.page.inner_text("#conn-state") == "hung up"
    tab.assert_clean()


def test_agent_speaks_typed_text_and_stop_cancels_it(open_tab):
    tab = open_tab("/agent", init_script=FAKE_MIC)
    connect(tab)
    tab.page.fill("#say", "Short and sweet. " * 20)
    tab.page.click("#speak")
    tab.wait_for(f"() => window.__morpheus.level() > {AUDIBLE_DBFS}", 10, "Morpheus's voice")
    tab.wait_for("() => window.__morpheus.events.some((e) => e.type === 'response.audio.started')", 5)
    time.sleep(0.5)
    tab.arm_silence_probe("stop", SILENT_DBFS)
    tab.page.click("#stop")
    silent_ms = tab.ms_to_silence()
    print(f"agent: silent {silent_ms:.0f} ms after clicking Stop")
    assert silent_ms < 600  # data channel -> server -> fade -> the browser's jitter buffer
    tab.wait_for("() => window.__morpheus.events.some((e) => e.type === 'response.done')", 5)
    time.sleep(0.8)
    assert tab.loudest_since_silence() < SILENT_DBFS
    done = tab.js("() => window.__morpheus.events.filter((e) => e.type === 'response.done')")
    assert done[-1]["status"] == "cancelled"
    assert tab.page.inner_text("#bi-count") == "0"  # a Stop is not a barge-in
    assert tab.page.is_hidden("#bargein-heard")
    reply = tab.js(TURNS)[-1]
    assert reply["outcome"] == "stop" and "Stopped" in reply["text"]
    assert reply["heard"] == done[-1]["heard_text"].split() and reply["unheard"]
    assert "error" not in event_types(tab)
    tab.assert_clean()


def test_with_barge_in_off_the_caller_is_heard_but_morpheus_keeps_talking(open_tab):
    tab = open_tab("/agent", init_script=FAKE_MIC)
    tab.page.uncheck("#barge-in")
    connect(tab)
    tab.wait_for("""() => window.__morpheus.events.some(
      (e) => e.type === 'session.updated' && e.session.barge_in === false)""", 5)
    tab.js("(t) => window.__fakeMic.load(t)", "Wait, stop please, I have a question.")
    tab.page.click("#speak")
    tab.wait_for(f"() => window.__morpheus.level() > {AUDIBLE_DBFS}", 10, "Morpheus's voice")
    tab.js("() => window.__fakeMic.speak()")
    tab.wait_for("() => window.__morpheus.bargeIns.length > 0", 5, "speech_started")
    tab.js(WATCH_REMOTE)
    time.sleep(1.0)
    assert tab.js("() => window.__watch.max") > AUDIBLE_DBFS  # still talking
    assert tab.js("() => window.__morpheus.speaking()")
    assert tab.page.inner_text("#bargein-title") == "Morpheus heard you"
    assert tab.page.inner_text("#bi-count") == "0"
    assert "output_audio_buffer.cleared" not in event_types(tab)
    tab.page.click("#stop")
    tab.assert_clean()


def test_agent_page_at_phone_width(open_tab):
    tab = open_tab("/agent", width=375, height=800, init_script=FAKE_MIC)
    assert tab.js("() => document.documentElement.scrollWidth") <= 375
    unlabelled = tab.js("""() => [...document.querySelectorAll('input, select, textarea, button, meter, audio')]
      .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
      .map((e) => e.id || e.outerHTML.slice(0, 60))""")
    assert unlabelled == []
    assert tab.page.is_disabled("#speak")  # nothing to speak into before connecting
    tab.screenshot("agent-375")
    tab.assert_clean()
