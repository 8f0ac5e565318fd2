"""Speech onset detection (webrtcvad + N-of-M) on real speech, and the downmix helpers."""

from __future__ import annotations

import numpy as np
import pytest

from dsp.vad import (
    SpeechOnsetDetector,
    downmix_interleaved,
    downmix_planar,
    frame_bytes,
    rms_dbfs,
)
from tests.test_webrtc import caller_speech

RATE = 48000
FRAME = frame_bytes(RATE)


def ms_bytes(ms: int) -> int:
    return RATE * ms // 1000 * 2


def silence(ms: int) -> bytes:
    return bytes(ms_bytes(ms))


def frames_of(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]


def test_frame_bytes_is_20_ms_of_s16():
    assert frame_bytes(48000) == 1920
    assert frame_bytes(16000) == 640


def test_rates_webrtcvad_cannot_take_are_refused():
    with pytest.raises(ValueError):
        SpeechOnsetDetector(sample_rate_hz=44100)
    with pytest.raises(ValueError):
        SpeechOnsetDetector(aggressiveness=4)


def test_onset_fires_once_at_the_nth_voiced_frame_of_real_speech():
    speech = caller_speech()  # starts at its first voiced sample
    # release_ms > the 300 ms pause after "Wait,": one utterance for this test
    det = SpeechOnsetDetector(sample_rate_hz=RATE, aggressiveness=2, onset_ms=60, release_ms=1000)
    assert det.onset_frames == 3 and det.window_frames == 4
    results = [det.process(f) for f in frames_of(silence(500) + speech[: ms_bytes(1000)])]
    fired = [i for i, r in enumerate(results) if r]
    assert len(fired) == 1, fired
    speech_frame = 500 // 20  # first frame of speech
    # The onset needs 3 voiced frames: no earlier than the 3rd, and promptly after.
    assert speech_frame + 2 <= fired[0] <= speech_frame + 6, fired
    assert det.speaking
    # It reports where the speech began, within a frame or two.
    assert det.speech_start_ms is not None
    assert abs(det.speech_start_ms - 500) <= 60


def test_silence_and_quiet_noise_never_fire():
    rng = np.random.default_rng(7)
    det = SpeechOnsetDetector(sample_rate_hz=RATE, aggressiveness=3)
    noise = (rng.standard_normal(RATE * 2) * 30).astype("<i2").tobytes()  # ~ -60 dBFS hiss
    assert not any(det.process(f) for f in frames_of(silence(1000) + noise))
    assert det.onsets == 0


def test_rearms_after_sustained_silence_but_not_after_a_short_pause():
    word = caller_speech()[: ms_bytes(180)]  # "Wait": one word, voiced throughout
    det = SpeechOnsetDetector(sample_rate_hz=RATE, onset_ms=60, release_ms=300)
    audio = silence(200) + word + silence(100) + word + silence(400) + word + silence(400)
    onsets = sum(det.process(f) for f in frames_of(audio))
    # 100 ms pause: same utterance; 400 ms pause: a new one. So exactly two onsets.
    assert onsets == 2
    assert det.onsets == 2


def test_process_accepts_any_chunk_size():
    speech = caller_speech()[: ms_bytes(1000)]
    pcm = silence(300) + speech
    whole = SpeechOnsetDetector(sample_rate_hz=RATE)
    split = SpeechOnsetDetector(sample_rate_hz=RATE)
    assert whole.process(pcm) is True
    odd = [pcm[i : i + 1234] for i in range(0, len(pcm), 1234)]  # not frame aligned
    assert sum(split.process(c) for c in odd) == whole.onsets >= 1
    assert split.frames_processed == whole.frames_processed
    assert split.speech_start_ms == whole.speech_start_ms


def test_n_of_m_tolerates_one_unvoiced_frame_inside_the_window():
    det = SpeechOnsetDetector(sample_rate_hz=RATE, onset_ms=60, window_ms=80)
    verdicts = iter([True, False, True, True])
    det.is_speech = lambda _frame: next(verdicts)  # type: ignore[method-assign]
    assert [det.process(silence(20)) for _ in range(4)] == [False, False, False, True]
    assert det.speech_start_ms == 0.0  # the first voiced frame of the window


def test_downmix_interleaved_averages_channels():
    stereo = np.array([[100, 300, -200, -400, 32767, 32767]], dtype=np.int16)
    assert downmix_interleaved(stereo, 2).tolist() == [200, -300, 32767]
    mono = np.array([1, 2, 3], dtype=np.int16)
    assert downmix_interleaved(mono, 1).tolist() == [1, 2, 3]


def test_downmix_planar_averages_planes():
    planes = np.array([[100, -200], [300, -400]], dtype=np.int16)
    assert downmix_planar(planes).tolist() == [200, -300]


def test_rms_dbfs():
    full = np.full(480, 32767, dtype=np.int16)
    assert abs(rms_dbfs(full)) < 0.01
    assert rms_dbfs(np.zeros(480, dtype=np.int16)) == float("-inf")
