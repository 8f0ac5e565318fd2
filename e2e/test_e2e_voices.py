"""The playground's voices panel in a real Chromium: upload a clip Piper spoke, save the current
settings as a preset, play a sample of each (a clone on a server without an engine that clones
says which engines can), speak with a stored voice, delete them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tests.audio_check import decode
from tests.voice_clips import piper_clip

if TYPE_CHECKING:
    from conftest import Server, Tab

CLONE, PRESET = "e2e-grandpa", "e2e-brisk"
SAMPLE_TEXT = "Hello! This is how I sound. The quick brown fox jumps over the lazy dog."


def _forget(morpheus: Server) -> None:
    for voice_id in (CLONE, PRESET):
        httpx.delete(f"{morpheus.url}/v1/audio/voices/{voice_id}", timeout=10)


def _listed(tab: Tab) -> list[str]:
    return tab.js("() => [...document.querySelectorAll('#library li')]"
                  ".map((li) => li.dataset.voiceId)")


def test_voices_panel_uploads_saves_plays_and_deletes(open_tab, morpheus: Server,
                                                      tmp_path: Path) -> None:
    _forget(morpheus)
    tab = open_tab("/")
    tab.wait_for("() => document.getElementById('backend-status').textContent === 'ready'",
                 what="backend health")
    assert tab.page.is_visible("#library-empty")

    # a clone from an MP3 of Piper's speech
    clip = tmp_path / "grandpa.mp3"
    clip.write_bytes(piper_clip("mp3"))
    tab.page.fill("#clone-name", "E2E Grandpa")
    tab.page.set_input_files("#clone-file", str(clip))
    tab.page.click("#clone-save")
    tab.wait_for(f"() => document.querySelector('#library li[data-voice-id=\"{CLONE}\"]')",
                 what="the clone in the list")
    assert "Stored" in tab.page.inner_text("#voices-status")
    assert tab.page.is_hidden("#library-empty")

    # a preset of the current settings: the active backend (piper), its default voice, 1.5x
    tab.js("() => { const s = document.getElementById('speed'); s.value = '1.5';"
           " s.dispatchEvent(new Event('input', { bubbles: true })); }")
    assert "piper" in tab.page.inner_text("#preset-summary")
    assert "1.50" in tab.page.inner_text("#preset-summary")
    tab.page.fill("#preset-name", "E2E Brisk")
    tab.page.click("#preset-save")
    tab.wait_for(f"() => document.querySelector('#library li[data-voice-id=\"{PRESET}\"]')",
                 what="the preset in the list")
    assert _listed(tab) == [CLONE, PRESET]
    stored = httpx.get(f"{morpheus.url}/v1/audio/voices/{PRESET}", timeout=10).json()
    assert stored["preset"]["backend"] == "piper" and stored["preset"]["speed"] == 1.5
    # both are in the voice picker, under their own group
    tab.wait_for(f"() => document.querySelector('#voice option[value=\"{PRESET}\"]')",
                 what="the picker to list stored voices")
    group = tab.js(f"() => document.querySelector('#voice option[value=\"{CLONE}\"]')"
                   ".parentElement.label")
    assert group == "Stored voices"

    tab.screenshot("voices-panel-listed")
    # a sample of the preset plays: a whole WAV from the preset's backend
    tab.page.click(f"#library li[data-voice-id=\"{PRESET}\"] .play-sample")
    sample = tab.wait_for("() => { const s = window.__morpheus.voiceSample();"
                          f" return s && s.id === '{PRESET}' && s; }}", 30, "the preset sample")
    assert sample["ok"] and sample["backend"] == "piper" and sample["bytes"] > 40_000
    # NaN until the element has read the WAV's header (and NaN is truthy in Python)
    duration = tab.wait_for("() => { const d = document.getElementById('sample-audio').duration;"
                            " return Number.isFinite(d) && d > 0 ? d : null; }", 10,
                            "the sample's duration")
    assert 1.5 < duration < 8
    # the same sample from the API, at the preset's speed, is as long (within Piper's spread)
    plain = httpx.post(f"{morpheus.url}/v1/audio/speech", timeout=30, json={
        "input": SAMPLE_TEXT, "response_format": "wav", "stream": False}).content
    assert duration < decode(plain).duration_s / 1.3  # 1.5x faster than speed 1

    # a sample of the clone cannot be spoken here (piper only): the reason names xtts
    tab.page.click(f"#library li[data-voice-id=\"{CLONE}\"] .play-sample")
    sample = tab.wait_for("() => { const s = window.__morpheus.voiceSample();"
                          f" return s && s.id === '{CLONE}' && s; }}", 30, "the clone sample")
    assert not sample["ok"] and "clone" in sample["error"] and "xtts" in sample["error"]
    assert tab.page.get_attribute("#voices-status", "data-kind") == "error"
    tab.errors[:] = [e for e in tab.errors if "status of 400" not in e]  # that answer, logged

    # speak with the preset from the main form, over the WebSocket: no backend pinned
    tab.page.select_option("#voice", PRESET)
    tab.page.fill("#text", "Stored voices work in the playground too.")
    tab.page.click("#speak")
    done = tab.wait_for("() => window.__morpheus.events.find((e) => e.type === 'response.done')",
                        30, "the response")
    assert done["status"] == "completed" and done["backend"] == "piper"
    update = [m for _, m in tab.sent_of_type("session.update")][-1]
    assert update["session"]["voice"] == PRESET and "backend" not in update["session"]
    time.sleep(0.2)

    # delete both: gone from the panel, the picker and the server
    for voice_id in (CLONE, PRESET):
        tab.page.click(f"#library li[data-voice-id=\"{voice_id}\"] .delete-voice")
        tab.wait_for(f"() => !document.querySelector('#library li[data-voice-id=\"{voice_id}\"]')",
                     what=f"{voice_id} to go")
        assert httpx.get(f"{morpheus.url}/v1/audio/voices/{voice_id}", timeout=10
                         ).status_code == 404
    assert tab.page.is_visible("#library-empty")
    assert not tab.js(f"() => document.querySelector('#voice option[value=\"{CLONE}\"]')")
    assert "default voice" in tab.page.inner_text("#preset-summary")
    tab.screenshot("voices-panel")
    tab.assert_clean()


def test_a_bad_clip_is_refused_in_the_panel_with_the_reason(open_tab, morpheus: Server,
                                                            tmp_path: Path) -> None:
    tab = open_tab("/")
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio at all\n" * 20)
    tab.page.fill("#clone-name", "E2E Notes")
    tab.page.set_input_files("#clone-file", str(notes))
    tab.page.click("#clone-save")
    tab.wait_for("() => document.getElementById('voices-status').dataset.kind === 'error'",
                 what="the refusal")
    assert "not an audio file" in tab.page.inner_text("#voices-status")
    assert _listed(tab) == [] or "e2e-notes" not in _listed(tab)
    tab.errors[:] = [e for e in tab.errors if "status of 415" not in e]
    tab.assert_clean()
