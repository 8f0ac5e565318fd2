"""First audio in Chromium over WebRTC, next to HTTP's first byte in the same page: a reported
figure (printed, and written to test-output/webrtc-first-audio.json for the benchmark).

Each run clicks Speak on the agent page (the click sends the text over the `events` data
channel) and notes when the remote voice, metered through Web Audio, first exceeds
AUDIBLE_DBFS; the page's own `response.audio.started` event splits that time into the server's
part and what follows it (the track's tick, RTP, Chromium's jitter buffer and audio path). An
HTTP request for the same sentence from the same page, between the WebRTC runs, gives HTTP's
first byte on the same clock under the same machine noise.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import TYPE_CHECKING

from conftest import OUTPUT
from test_e2e_agent import FAKE_MIC, connect

if TYPE_CHECKING:
    from conftest import Tab

SENTENCE = ("Hello there! Thanks for calling the Morpheus help line, where every question gets a "
            "clear answer in a friendly, natural voice.")  # the bench's first ~120-char sentence
RUNS = 20
AUDIBLE_DBFS = -70.0  # the bench's threshold for a WebRTC frame that carries the response
QUIET_DBFS = -100.0  # idle frames decode to digital silence (-120 in the page's meter)
RESULT = OUTPUT / "webrtc-first-audio.json"

HTTP_FIRST_BYTE = """async (text) => {
  const t0 = performance.now();
  const r = await fetch("/v1/audio/speech", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ input: text, response_format: "pcm" }),
  });
  const reader = r.body.getReader();
  let first = null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (first === null && value.length) first = performance.now() - t0;
  }
  return first;
}"""

def _events_after(tab: Tab, t_ms: float, kind: str) -> list[dict]:
    return tab.js("([t, kind]) => window.__morpheus.events.filter((e) => e.t_ms >= t && "
                  "e.type === kind)", [t_ms, kind])


def _settle(tab: Tab) -> None:
    """Stop the reply and wait until the page hears silence again."""
    tab.page.click("#stop")
    tab.wait_for("() => !window.__morpheus.speaking()", 10, "the response to end")
    deadline = time.monotonic() + 5
    quiet_since = None
    while time.monotonic() < deadline:
        if tab.js("() => window.__morpheus.level()") < QUIET_DBFS:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.3:
                return
        else:
            quiet_since = None
        time.sleep(0.02)


def _one_webrtc_run(tab: Tab) -> tuple[float, float | None]:
    """(click -> audible ms, click -> response.audio.started ms)."""
    tab.arm_sound_probe("speak", AUDIBLE_DBFS)
    tab.page.click("#speak")
    heard_ms = tab.ms_to_sound()
    clicked = tab.js("() => window.__probe.clickedAt")
    started = _events_after(tab, clicked, "response.audio.started")
    started_ms = started[0]["t_ms"] - clicked if started else None
    _settle(tab)
    return heard_ms, started_ms


def test_webrtc_first_audio_in_chromium_next_to_http(open_tab):
    tab = open_tab("/agent", init_script=FAKE_MIC)
    connect(tab)
    tab.page.fill("#say", SENTENCE)
    for _ in range(2):  # warm both paths (and let Chromium's jitter buffer settle)
        tab.js(HTTP_FIRST_BYTE, SENTENCE)
        _one_webrtc_run(tab)
    http, heard, started = [], [], []
    for _ in range(RUNS):
        http.append(float(tab.js(HTTP_FIRST_BYTE, SENTENCE)))
        h, s = _one_webrtc_run(tab)
        heard.append(h)
        if s is not None:
            started.append(s)
    jitter_ms = tab.page.evaluate("() => document.getElementById('stat-jitter').textContent")
    result = {
        "runs": RUNS,
        "sentence_chars": len(SENTENCE),
        "audible_dbfs": AUDIBLE_DBFS,
        "http_first_byte_ms_p50": round(statistics.median(http), 1),
        "webrtc_first_audible_ms_p50": round(statistics.median(heard), 1),
        "webrtc_audio_started_event_ms_p50": round(statistics.median(started), 1)
        if started else None,
        "webrtc_after_audio_started_ms_p50": round(statistics.median(
            [h - s for h, s in zip(heard, started, strict=False)]), 1) if started else None,
        "chromium_jitter_buffer_ms": jitter_ms,
        "http_first_byte_ms": [round(x, 1) for x in http],
        "webrtc_first_audible_ms": [round(x, 1) for x in heard],
    }
    OUTPUT.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=1))
    print("\nwebrtc first audio (Chromium): "
          + json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}))
    # A guard, not a target: the browser's figure is reported (5x the 178 ms).
    assert result["webrtc_first_audible_ms_p50"] < 900
    assert "error" not in [e["type"] for e in tab.js("() => window.__morpheus.events")]
    tab.assert_clean()
