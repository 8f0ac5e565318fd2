"""The playground in a real Chromium: speech plays while it streams, Stop, backend switch,
download; words lit as they are heard, the waveform, and what was heard when stopped."""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING

from tests.audio_check import pcm_stats, read_wave

if TYPE_CHECKING:
    from conftest import Server, Tab

AUDIBLE_DBFS = -50.0  # speech from Piper sits around -20..-30 dBFS
SILENT_DBFS = -70.0
PARAGRAPH = (
    "Morpheus streams speech while the text is still being read. This paragraph is long on "
    "purpose, so that there is plenty of audio left to interrupt when the test presses Stop. "
    "It keeps going for a while, sentence after sentence, at an ordinary speaking pace, and "
    "it would carry on for quite some time if nobody stopped it."
)
SYNTHETIC_MS_PER_CHAR = 60.0  # the synthetic engine's pace (adapters/synthetic.py)

def ready(tab: Tab) -> None:
    tab.wait_for("() => document.querySelectorAll('#backend option').length > 1", what="backends")
    tab.wait_for("() => document.getElementById('backend-status').textContent === 'ready'",
                 what="backend health")
    tab.wait_for("() => document.getElementById('perf-conn').dataset.state === 'live'",
                 what="the perf feed")


def event_types(tab: Tab) -> list[str]:
    return tab.js("() => window.__morpheus.events.map((e) => e.type)")


def speak_and_time_first_sound(tab: Tab) -> float:
    tab.arm_sound_probe("speak", AUDIBLE_DBFS)
    tab.page.click("#speak")
    return tab.ms_to_sound()


def test_speech_plays_within_a_second_of_speak_and_stop_silences_it(open_tab):
    tab = open_tab("/")
    ready(tab)
    tab.page.fill("#text", PARAGRAPH)
    first_sound_ms = speak_and_time_first_sound(tab)
    started = tab.js("() => window.__morpheus.events.find((e) => e.type === 'response.audio.started')")
    print(f"\nplayground: first audible output {first_sound_ms:.0f} ms after clicking Speak"
          f" (server time to first audio {started['ttft_ms']} ms)")
    assert first_sound_ms < 1000
    assert tab.js("() => window.__morpheus.playerMode()") == "worklet"

    # Still speaking a second later, and the playback position moves in real time.
    time.sleep(0.5)
    played_a = tab.js("() => window.__morpheus.playedMs()")
    time.sleep(1.0)
    played_b = tab.js("() => window.__morpheus.playedMs()")
    assert tab.js("() => window.__morpheus.phase()") == "speaking"
    assert 700 < played_b - played_a < 1300, (played_a, played_b)
    assert 0 < tab.js("() => window.__morpheus.bufferMs()") <= 1000  # the server's bounded lead
    # The page tells the server where its playback is, several times a second.
    reports = [(t, m) for t, m in tab.sent_of_type("playback.report") if t > time.monotonic() - 1.0]
    assert len(reports) >= 4, reports
    assert reports[-1][1]["played_ms"] > reports[0][1]["played_ms"] > 0
    assert all(0 <= m["buffer_ms"] <= 1000 for _, m in reports)
    sent_types = [m["type"] for _, _, m in tab.sent]
    assert sent_types[:3] == ["session.update", "input_text.append", "input_text.done"]

    tab.arm_silence_probe("stop", SILENT_DBFS)
    tab.page.click("#stop")
    silent_after_ms = tab.ms_to_silence()
    print(f"playground: silent {silent_after_ms:.0f} ms after clicking Stop")
    assert silent_after_ms < 250  # measured 37-50 ms; 5x margin for a busy CI box
    time.sleep(1.5)  # nothing stale plays afterwards
    assert tab.loudest_since_silence() < SILENT_DBFS
    assert tab.js("() => window.__morpheus.phase()") == "idle"
    assert tab.page.inner_text("#status").startswith("Stopped")
    assert not tab.page.is_disabled("#speak") and tab.page.is_disabled("#stop")

    # The server was told: the response ended cancelled, and nothing went wrong on the way.
    tab.wait_for("() => window.__morpheus.events.some((e) => e.type === 'response.done')", 3)
    done = tab.js("() => window.__morpheus.events.filter((e) => e.type === 'response.done')")
    assert done[-1]["status"] == "cancelled"
    types = event_types(tab)
    for t in ("session.created", "session.updated", "response.created", "response.audio.started",
              "output_audio_buffer.cleared"):
        assert t in types, (t, types)
    assert "error" not in types, tab.js("() => window.__morpheus.events")

    # Piper's word timings lit the words; the page says whether they are exact or estimated,
    # and after the Stop, what was heard.
    exact = {e["exact"] for e in tab.js("() => window.__morpheus.events") if e["type"] == "response.word"}
    assert exact, "no response.word events"
    kind = "mixed" if len(exact) == 2 else "exact" if exact == {True} else "estimated"
    assert tab.page.get_attribute("#timing-kind", "data-kind") == kind
    tab.wait_for("() => !document.getElementById('heard').hidden", 2, "the heard line")
    assert tab.page.inner_text("#heard").startswith("Heard: ")
    tab.screenshot("playground")
    tab.assert_clean()


def test_a_finished_response_plays_out_and_downloads_as_a_wav(open_tab):
    tab = open_tab("/")
    ready(tab)
    tab.page.fill("#text", "Hello there. This is a short one.")
    speak_and_time_first_sound(tab)
    tab.wait_for("() => window.__morpheus.phase() === 'idle'", 15, "the response to finish")
    assert tab.page.inner_text("#status").startswith("Done")
    done = tab.js("() => window.__morpheus.events.filter((e) => e.type === 'response.done')")
    assert done[-1]["status"] == "completed" and done[-1]["backend"] == "piper"
    played, server_ms = tab.js("() => window.__morpheus.playedMs()"), done[-1]["audio_ms"]
    assert abs(played - server_ms) < 60, (played, server_ms)  # every sample heard, none lost

    assert tab.page.is_visible("#download")
    wav = tab.js("""async () => {
      const a = document.getElementById("download");
      const buf = await (await fetch(a.href)).arrayBuffer();
      const v = new DataView(buf);
      const tag = (o) => String.fromCharCode(...new Uint8Array(buf, o, 4));
      return { riff: tag(0), wave: tag(8), data: tag(36), rate: v.getUint32(24, true),
               channels: v.getUint16(22, true), bits: v.getUint16(34, true),
               riffSize: v.getUint32(4, true), dataSize: v.getUint32(40, true), total: buf.byteLength,
               name: a.download };
    }""")
    assert (wav["riff"], wav["wave"], wav["data"]) == ("RIFF", "WAVE", "data")
    assert (wav["rate"], wav["channels"], wav["bits"]) == (24000, 1, 16)
    assert wav["dataSize"] == wav["total"] - 44 and wav["riffSize"] == wav["total"] - 8
    assert abs(wav["dataSize"] / 48.0 - server_ms) < 60
    assert wav["name"].endswith(".wav")

    # Speed and low latency reach the server, and speed is applied for real.
    tab.page.fill("#speed", "2")
    tab.page.check("#low-latency")
    assert tab.page.inner_text("#speed-out") == "2.00×"
    speak_and_time_first_sound(tab)
    tab.wait_for("() => window.__morpheus.phase() === 'idle'", 15, "the faster response to finish")
    update = tab.sent_of_type("session.update")[-1][1]["session"]
    assert update["speed"] == 2 and update["low_latency"] is True
    fast = tab.js("() => window.__morpheus.events.filter((e) => e.type === 'response.done')")[-1]
    assert fast["status"] == "completed"
    assert 0.35 < fast["audio_ms"] / server_ms < 0.65, (fast["audio_ms"], server_ms)
    assert "error" not in event_types(tab)
    tab.assert_clean()


def test_switching_backend_in_the_ui_changes_the_backend_of_the_next_request(open_tab, morpheus):
    tab = open_tab("/")
    ready(tab)
    page = tab.page
    page.select_option("#transport", "http")
    page.fill("#text", "Which engine is speaking?")

    def speak_over_http() -> str:
        with page.expect_response(lambda r: r.url.endswith("/v1/audio/speech")) as info:
            page.click("#speak")
        response = info.value
        assert response.status == 200
        tab.wait_for("() => window.__morpheus.phase() === 'idle'", 15, "the response to finish")
        return response.headers["x-backend"]

    voices = """() => JSON.stringify([...document.querySelectorAll('#voice optgroup')]
      .map((g) => [g.label, [...g.children].map((o) => o.value)]))"""
    assert json.loads(tab.js(voices)) == [["English", ["en_US-joe-medium"]]]  # by language
    assert speak_over_http() == "piper"
    assert tab.page.get_attribute("#timing-kind", "data-kind") == "http"  # no word events there
    assert tab.page.is_visible("#waveform")
    with page.expect_response(lambda r: r.url.endswith("/config") and r.request.method == "POST") as info:
        page.select_option("#backend", "espeak")
    assert info.value.status == 200
    assert info.value.request.post_data_json == {"tts_backend": "espeak"}
    tab.wait_for("() => document.getElementById('status').textContent.includes('switched to espeak')")
    assert page.input_value("#backend") == "espeak"
    tab.wait_for(f"""() => ({voices})().includes('"en-us"')""", 5, "espeak's voices")
    groups = dict(json.loads(tab.js(voices)))
    assert "en-us" in groups["English"] and "en_US-joe-medium" not in str(groups)
    ids = [v for vs in groups.values() for v in vs]
    assert len(ids) == len(set(ids))  # one option per voice
    assert speak_over_http() == "espeak"
    assert tab.js("() => window.__morpheus.lastHeaders().backend") == "espeak"
    assert page.inner_text("#fact-backend") == "espeak"
    assert tab.js("() => window.__morpheus.playedMs()") > 300  # espeak's audio played too

    # The WebSocket transport follows the picker as well.
    page.select_option("#transport", "ws")
    page.click("#speak")
    tab.wait_for("() => window.__morpheus.events.some((e) => e.type === 'response.done')", 15)
    done = tab.js("() => window.__morpheus.events.filter((e) => e.type === 'response.done')")
    assert done[-1]["backend"] == "espeak" and done[-1]["status"] == "completed"
    tab.wait_for("() => window.__morpheus.phase() === 'idle'", 10)
    tab.assert_clean()


def test_perf_panel_plots_every_stream_the_server_runs(open_tab):
    watcher = open_tab("/")
    other = open_tab("/")  # another client: its stream must show in the watcher's panel too
    ready(watcher)
    ready(other)
    frames_before = watcher.js("() => window.__morpheus.perf().frames")
    for tab in (other, watcher):
        tab.page.fill("#text", PARAGRAPH)
        tab.page.click("#speak")
    watcher.wait_for("() => document.querySelectorAll('#perf-streams tbody tr').length === 2", 10,
                     "two stream rows")
    rows = watcher.page.locator("#perf-streams tbody tr").all_inner_texts()
    assert all("ws" in r and "piper" in r for r in rows), rows
    watcher.wait_for("""() => document.querySelector('[data-metric="active"] .value').textContent === '2'""")
    watcher.wait_for("""() => document.querySelector('[data-metric="ttfa"] .value').textContent.endsWith('ms')""")
    assert watcher.page.inner_text("#perf-backend") == "piper"
    assert watcher.page.inner_text("#perf-state") not in ("idle", "–")
    assert watcher.page.is_hidden("#perf-empty")

    # The feed is live (4 snapshots a second) and the plots have something drawn on them.
    t0, f0 = time.monotonic(), watcher.js("() => window.__morpheus.perf().frames")
    time.sleep(2.0)
    rate = (watcher.js("() => window.__morpheus.perf().frames") - f0) / (time.monotonic() - t0)
    assert 3.0 <= rate <= 5.0, rate
    assert f0 > frames_before
    inked = watcher.js("""() => {
      const c = document.querySelector('[data-metric="active"] canvas');
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
      return n;
    }""")
    assert inked > 50, inked
    watcher.screenshot("playground-perf")

    for tab in (other, watcher):
        tab.page.click("#stop")
    watcher.wait_for("() => document.querySelectorAll('#perf-streams tbody tr').length === 0", 10,
                     "the rows to go")
    watcher.wait_for("""() => document.querySelector('[data-metric="active"] .value').textContent === '0'""")
    assert watcher.page.is_visible("#perf-empty")
    watcher.assert_clean()
    other.assert_clean()


def test_phone_width_labels_and_keyboard(open_tab):
    tab = open_tab("/", width=375, height=800)
    ready(tab)
    page = tab.page
    assert tab.js("() => document.documentElement.scrollWidth") <= 375
    unlabelled = tab.js("""() => [...document.querySelectorAll('input, select, textarea, button, meter')]
      .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
      .map((e) => e.id || e.outerHTML.slice(0, 60))""")
    assert unlabelled == []

    # Tags go in at the cursor, from the keyboard.
    page.fill("#text", "Well that was funny")
    page.focus("#text")
    page.keyboard.press("End")
    page.focus("button[aria-label='Insert laugh tag']")
    page.keyboard.press("Enter")
    assert page.input_value("#text").startswith("Well that was funny <laugh>")
    assert "28 / 100,000 characters" in page.inner_text("#char-count")

    # Ctrl+Enter speaks, Escape stops.
    page.fill("#text", PARAGRAPH)
    page.focus("#text")
    page.keyboard.press("Control+Enter")
    tab.wait_for(f"() => window.__morpheus.level() > {AUDIBLE_DBFS}", 10, "speech")
    page.keyboard.press("Escape")
    tab.wait_for("() => window.__morpheus.phase() === 'idle'", 2)
    tab.screenshot("playground-375")
    tab.assert_clean()


# ---- word timings: highlighting, the waveform, what was heard

CURRENT_WORD = "() => window.__morpheus.currentWord()"
WORD_SPANS = """() => [...document.querySelectorAll('#words .w')].map((w) => ({
  text: w.textContent, cls: w.className, timing: w.dataset.timing || null,
  start: w.dataset.startMs === undefined ? null : Number(w.dataset.startMs),
  end: w.dataset.endMs === undefined ? null : Number(w.dataset.endMs)}))"""
WAVE_PIXELS = """() => {
  const c = document.getElementById('waveform');
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
  return { inked: n, width: c.width, height: c.height };
}"""


def open_synthetic(open_tab, morpheus: Server) -> Tab:
    """A playground tab on the synthetic engine, which knows its exact word timings."""
    morpheus.set_backend("synthetic")  # the autouse fixture puts piper back afterwards
    tab = open_tab("/")
    ready(tab)
    assert tab.page.input_value("#backend") == "synthetic"
    return tab


def downloaded_wav(tab: Tab) -> bytes:
    b64 = tab.js("""async () => {
      const buf = new Uint8Array(await (await fetch(document.getElementById('download').href)).arrayBuffer());
      let s = ''; for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode(...buf.subarray(i, i + 0x8000));
      return btoa(s);
    }""")
    return base64.b64decode(b64)


def test_highlighted_word_follows_playback_then_the_waveform_and_wav_of_the_finished_audio(
        open_tab, morpheus):
    tab = open_synthetic(open_tab, morpheus)
    text = "Each word lights up while it is heard, timed by the page's own playback clock."
    tab.page.fill("#text", text)
    tab.page.click("#speak")
    tab.wait_for("() => window.__morpheus.currentWord().text !== null", 10, "a highlighted word")

    # Sample the highlighted word with the player's position it was chosen for (the last
    # animation frame) and the position now, read together in the page. The words arrive
    # ~0.5 s ahead of their audio (the server's lead), so a highlight driven by arrival or
    # wall time would run ahead of these bounds.
    samples = []
    while tab.js("() => window.__morpheus.phase()") != "idle":
        w = tab.js(CURRENT_WORD)
        if w["text"] is not None:
            samples.append(w)
        if len(samples) == 8:
            tab.screenshot("playground-words-playing")
        time.sleep(0.15)
    assert len(samples) >= 10, samples
    for w in samples:
        assert w["startMs"] <= w["followedMs"] < w["endMs"] + 100, w  # + the pause after a word
        assert 0 <= w["playedMs"] - w["followedMs"] < 300, w  # set every frame, not now and then
    seen = [w["text"] for w in samples]
    assert len(set(seen)) >= 6, seen
    order = text.split()
    assert [order.index(t) for t in seen] == sorted(order.index(t) for t in seen)  # forward only

    # Every word was timed, exactly (synthetic), and the page says so; all are spoken now.
    spans = tab.js(WORD_SPANS)
    assert [s["text"] for s in spans] == text.split()
    assert all(s["timing"] == "exact" and "spoken" in s["cls"] for s in spans), spans
    starts = [s["start"] for s in spans]
    assert starts == sorted(starts) and all(s["start"] < s["end"] for s in spans)
    assert tab.page.get_attribute("#timing-kind", "data-kind") == "exact"
    assert tab.page.inner_text("#timing-kind") == "exact timings"
    words = [e for e in tab.js("() => window.__morpheus.events") if e["type"] == "response.word"]
    assert [w["text"] for w in words] == text.split() and all(w["exact"] for w in words)

    # The finished audio: its waveform drawn, and the WAV to download.
    assert tab.page.inner_text("#status").startswith("Done")
    done = tab.js("() => window.__morpheus.events.filter((e) => e.type === 'response.done')")[-1]
    assert done["status"] == "completed" and done["backend"] == "synthetic"
    assert tab.page.is_visible("#waveform") and tab.page.is_visible("#download")
    ink = tab.js(WAVE_PIXELS)
    assert ink["width"] > 300 and ink["inked"] > 10 * ink["width"], ink  # more than the zero line
    assert tab.js("() => window.__morpheus.waveInk()") > 0.9 * ink["width"]  # audio end to end
    rate, frames, pcm = read_wave(downloaded_wav(tab))
    assert rate == 24000 and len(pcm) == 2 * frames
    audio_ms = 1000 * frames / rate
    assert abs(audio_ms - done["audio_ms"]) < 25, (audio_ms, done)  # the tail is padded to 20 ms
    assert abs(audio_ms - SYNTHETIC_MS_PER_CHAR * len(text)) < 200, audio_ms
    assert pcm_stats(pcm).rms_dbfs > -30  # the tones, not silence
    tab.screenshot("playground-words-done")
    tab.assert_clean()


def test_stop_mid_response_shows_what_was_heard_and_marks_the_rest_unheard(open_tab, morpheus):
    tab = open_synthetic(open_tab, morpheus)
    tab.page.fill("#text", PARAGRAPH)
    tab.page.click("#speak")
    tab.wait_for("() => window.__morpheus.playedMs() > 1800", 10, "two seconds of playback")
    played_before_stop = tab.js("() => window.__morpheus.playedMs()")
    tab.page.click("#stop")
    played_at_stop = tab.js("() => window.__morpheus.playedMs()")
    tab.wait_for("""() => window.__morpheus.events.some(
      (e) => e.type === 'response.done' && e.heard_text !== undefined)""", 5, "response.done")
    events = tab.js("() => window.__morpheus.events")
    cleared = next(e for e in events if e["type"] == "output_audio_buffer.cleared")
    done = [e for e in events if e["type"] == "response.done"][-1]
    heard = done["heard_text"]
    assert done["status"] == "cancelled" and cleared["heard_text"] == heard
    # The page told the server where it was at the cancel: not an older periodic report
    # (its position only grows, and stops with Stop; 1 ms: the report is rounded).
    assert played_before_stop - 1 <= cleared["played_ms"] <= played_at_stop + 1, \
        (played_before_stop, cleared, played_at_stop)

    # heard_text is a prefix of the input, in whole words, and matches the played time.
    input_words = PARAGRAPH.split()
    heard_words = heard.split()
    assert heard_words and heard_words == input_words[: len(heard_words)], heard
    assert len(heard_words) < len(input_words)
    timed = [e for e in events if e["type"] == "response.word"]
    assert all(w["end_ms"] <= done["audio_ms"] for w in timed[: len(heard_words)])
    if len(timed) > len(heard_words):
        assert timed[len(heard_words)]["end_ms"] > done["audio_ms"]

    # What the page shows: the heard words, then the rest struck out as unheard.
    tab.wait_for("() => !document.getElementById('heard').hidden", 2, "the heard line")
    spans = tab.js(WORD_SPANS)
    assert [s["text"] for s in spans if "heard" in s["cls"].split()] == heard_words
    assert [s["text"] for s in spans if "unheard" in s["cls"].split()] == input_words[len(heard_words):]
    assert tab.js("() => document.querySelectorAll('#words [aria-current]').length") == 0
    line = tab.page.inner_text("#heard")
    assert f"“{heard}”" in line and f"Not heard: {len(input_words) - len(heard_words)} of" in line
    decoration = tab.js("""() => getComputedStyle(document.querySelector('#words .w.unheard'))
      .textDecorationLine""")
    assert decoration == "line-through"  # not by colour alone

    # The waveform of what was received, the unheard part faint, and the WAV.
    assert tab.page.inner_text("#status").startswith("Stopped")
    assert tab.page.is_visible("#waveform")
    assert "heard" in tab.page.inner_text("#wave-caption")
    assert tab.js(WAVE_PIXELS)["inked"] > 0
    rate, frames, _ = read_wave(downloaded_wav(tab))
    assert 1000 * frames / rate >= played_at_stop - 50
    tab.screenshot("playground-words-stopped")
    tab.assert_clean()


def test_what_was_typed_and_what_was_spoken_side_by_side(open_tab, morpheus):
    """The text front end reads "$12.50" as words: the page shows the typed words, and with
    the toggle on, what was spoken next to each rewritten one; markup is never a word."""
    tab = open_synthetic(open_tab, morpheus)
    tab.page.fill("#text", "**Total:** $12.50 on 3/4.")
    tab.page.click("#speak")
    tab.wait_for("() => window.__morpheus.phase() === 'idle'", 20, "the response to end")
    words = [e for e in tab.js("() => window.__morpheus.events") if e["type"] == "response.word"]
    assert [w["text"] for w in words] == ["Total:", "$12.50", "on", "3/4."], words
    money = words[1]
    assert money["spoken"] == "twelve dollars and fifty cents", money
    spoken = tab.js("""() => [...document.querySelectorAll('#words .w[data-spoken]')]
                        .map((w) => [w.textContent, w.dataset.spoken])""")
    assert ["$12.50", "twelve dollars and fifty cents"] in spoken, spoken
    assert "show-spoken" not in (tab.page.get_attribute("#words", "class") or "")
    tab.page.check("#show-spoken")
    assert "show-spoken" in tab.page.get_attribute("#words", "class")
    after = tab.js("""() => getComputedStyle(
        document.querySelector('#words .w[data-spoken]'), '::after').content""")
    assert "twelve dollars" in after, after
    tab.screenshot("playground-typed-and-spoken")
