"""The realtime event vocabulary: parsing, validation into error payloads, and event builders."""

from __future__ import annotations

import json

import pytest

from signaling import protocol as P


def parse(msg: object) -> P.ClientMessage:
    return P.parse_client_message(json.dumps(msg))


def error_of(raw: str | bytes) -> dict:
    with pytest.raises(P.ProtocolError) as e:
        P.parse_client_message(raw)
    return e.value.payload()


def test_every_client_type_parses_into_its_dataclass():
    assert parse({"type": "input_text.append", "text": "Hel"}) == P.InputTextAppend("Hel")
    assert parse({"type": "input_text.flush"}) == P.InputTextFlush()
    assert parse({"type": "input_text.done"}) == P.InputTextDone()
    assert parse({"type": "response.cancel"}) == P.ResponseCancel()
    assert parse({"type": "playback.report", "played_ms": 1200, "buffer_ms": 180.5}) == (
        P.PlaybackReport(played_ms=1200.0, buffer_ms=180.5)
    )
    update = parse({"type": "session.update", "session": {
        "voice": "tara", "backend": "piper", "low_latency": True, "sample_rate": 16000,
        "barge_in": False, "speed": 1.25}})
    assert update == P.SessionUpdate(voice="tara", backend="piper", low_latency=True,
                                     sample_rate_hz=16000, barge_in=False, speed=1.25)
    assert set(P.CLIENT_TYPES) == {
        "session.update", "input_text.append", "input_text.flush", "input_text.done",
        "response.cancel", "playback.report"}


def test_session_fields_are_all_optional_and_unknown_fields_ignored():
    assert parse({"type": "session.update"}) == P.SessionUpdate()
    assert parse({"type": "session.update", "session": {"future_knob": 1}}) == P.SessionUpdate()
    assert parse({"type": "session.update", "session": {"sample_rate": 24000.0}}) == (
        P.SessionUpdate(sample_rate_hz=24000)
    )


def test_bad_json_is_an_error_payload():
    ev = error_of("{nope")
    assert ev["type"] == "error" and ev["code"] == P.INVALID_JSON and ev["message"]
    assert "field" not in ev
    assert error_of(b"\xff\xfe")["code"] == P.INVALID_JSON


@pytest.mark.parametrize("raw", ['[1, 2]', '"text"', "42", "{}", '{"type": 5}'])
def test_non_objects_and_missing_type_are_invalid_messages(raw):
    assert error_of(raw)["code"] == P.INVALID_MESSAGE


def test_unknown_type_names_the_type_field():
    ev = error_of(json.dumps({"type": "input_audio_buffer.append", "audio": ""}))
    assert ev == {"type": "error", "code": P.UNKNOWN_TYPE, "field": "type",
                  "message": "unknown message type 'input_audio_buffer.append'"}


@pytest.mark.parametrize("msg,field", [
    ({"type": "input_text.append"}, "text"),
    ({"type": "input_text.append", "text": 5}, "text"),
    ({"type": "input_text.append", "text": ["a"]}, "text"),
    ({"type": "session.update", "session": "piper"}, "session"),
    ({"type": "session.update", "session": {"voice": 3}}, "session.voice"),
    ({"type": "session.update", "session": {"backend": True}}, "session.backend"),
    ({"type": "session.update", "session": {"low_latency": "yes"}}, "session.low_latency"),
    ({"type": "session.update", "session": {"low_latency": 1}}, "session.low_latency"),
    ({"type": "session.update", "session": {"sample_rate": "24000"}}, "session.sample_rate"),
    ({"type": "session.update", "session": {"sample_rate": 24000.5}}, "session.sample_rate"),
    ({"type": "session.update", "session": {"sample_rate": True}}, "session.sample_rate"),
    ({"type": "session.update", "session": {"sample_rate": 4000}}, "session.sample_rate"),
    ({"type": "session.update", "session": {"sample_rate": 96000}}, "session.sample_rate"),
    ({"type": "session.update", "session": {"speed": 9}}, "session.speed"),
    ({"type": "session.update", "session": {"barge_in": "off"}}, "session.barge_in"),
    ({"type": "playback.report", "played_ms": "10"}, "played_ms"),
    ({"type": "playback.report", "buffer_ms": -1}, "buffer_ms"),
    ({"type": "playback.report", "played_ms": False}, "played_ms"),
])
def test_wrong_field_types_name_the_field(msg, field):
    ev = error_of(json.dumps(msg))
    assert ev["code"] == P.INVALID_FIELD
    assert ev["field"] == field
    assert field in ev["message"]


def test_oversized_message_is_refused_before_parsing():
    raw = json.dumps({"type": "input_text.append", "text": "a" * P.MAX_MESSAGE_BYTES})
    assert error_of(raw)["code"] == P.INVALID_MESSAGE


def test_session_config_applies_only_sent_fields():
    base = P.SessionConfig(voice="joe", backend="piper", sample_rate_hz=24000)
    new = base.updated(P.SessionUpdate(sample_rate_hz=16000, barge_in=False))
    assert new == P.SessionConfig(voice="joe", backend="piper", sample_rate_hz=16000,
                                  barge_in=False)
    assert new.as_dict() == {"voice": "joe", "backend": "piper", "low_latency": False,
                             "sample_rate": 16000, "speed": 1.0, "barge_in": False,
                             "normalize": None}


def test_server_event_builders_spell_the_vocabulary():
    cfg = P.SessionConfig(backend="piper")
    assert P.session_created(cfg) == {"type": "session.created", "session": cfg.as_dict()}
    assert P.session_updated(cfg)["type"] == "session.updated"
    assert P.response_created("r1") == {"type": "response.created", "response_id": "r1"}
    assert P.response_audio_started("r1", 12.34) == {
        "type": "response.audio.started", "response_id": "r1", "ttft_ms": 12.34}
    assert P.segment_done("r1", "Hi.", 812.345) == {
        "type": "segment.done", "response_id": "r1", "text": "Hi.", "audio_ms": 812.3}
    assert P.response_done("r1", "cancelled", 400) == {
        "type": "response.done", "response_id": "r1", "status": "cancelled", "audio_ms": 400}
    assert P.output_audio_buffer_cleared("r1", 333.33) == {
        "type": "output_audio_buffer.cleared", "response_id": "r1", "played_ms": 333.3}
    assert P.speech_started(1520) == {
        "type": "input_audio_buffer.speech_started", "audio_start_ms": 1520}
    assert P.error("busy", "later", retry_after_s=5.0) == {
        "type": "error", "code": "busy", "message": "later", "retry_after_s": 5.0}
    assert json.loads(P.dumps(P.error("x", "y", "f"))) == {
        "type": "error", "code": "x", "message": "y", "field": "f"}
