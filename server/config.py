"""One typed settings object: defaults < .env < environment < POST /config (hot, validated)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("morpheus.config")

BackendName = str


class Settings(BaseSettings):
    """Every knob Morpheus reads. Field names are the env keys (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, validate_assignment=True
    )

    # --- server
    host: str = "127.0.0.1"
    port: int = Field(5005, ge=1, le=65535)
    log_level: str = "INFO"
    outputs_dir: Path = Path("outputs")
    outputs_max_files: int = Field(200, ge=1)
    max_input_chars: int = Field(100_000, ge=1)

    # --- backends
    tts_backend: BackendName = "piper"
    backends: str = "piper,espeak,synthetic,snac_llamacpp"  # comma list, enabled
    fallback_backend: BackendName | None = "espeak"
    default_voice: str | None = None

    # --- piper
    piper_voice: str | None = None  # path to a .onnx voice; default: the bundled joe voice
    piper_voices_dir: str | None = None  # extra folder scanned for *.onnx voices
    piper_intra_op_threads: int = Field(1, ge=1, le=64)
    piper_workers: int = Field(2, ge=1, le=64)  # concurrent session.run calls (one per core)

    # --- espeak
    espeak_voice: str = "en-us"

    # --- synthetic (tests and demos)
    synthetic_ttfb_ms: float = Field(0.0, ge=0)
    synthetic_rtf: float = Field(0.0, ge=0)  # x real time; 0 = instant
    synthetic_stall_after: int | None = None
    synthetic_fail_times: int = Field(0, ge=0)
    synthetic_native_speed: bool = True

    # --- snac / orpheus via llama.cpp
    snac_url: str = "http://127.0.0.1:8080/v1/completions"  # or a comma list (a pool)
    snac_model: str | None = None  # local dir in the hub layout (config.json + weights)
    snac_onnx: str | None = None  # `morpheus snac export` file: decode on onnxruntime, no torch
    snac_device: str | None = None  # cuda / cpu; default: cuda when available
    snac_batch: Literal["auto", "on", "off"] = "auto"  # windows of streams in one call (auto: GPU)
    snac_max_batch: int = Field(16, ge=1, le=256)
    snac_threads: int | None = Field(None, ge=1, le=256)  # per decode; default 1, a lane per core
    snac_target_chunk: int = Field(28, ge=7, le=448)  # tokens
    snac_first_chunk: int = Field(8, ge=7, le=448)
    snac_window_frames: int = Field(4, ge=2, le=32)
    snac_max_window_frames: int = Field(16, ge=2, le=64)  # the window grows to this when ahead
    snac_kept_slice: str = "2048,4096"  # samples of the window kept per step (Orpheus' choice)
    orpheus_gguf: str | None = None
    orpheus_model_name: str = "orpheus"
    orpheus_max_tokens: int = Field(8192, ge=16)
    orpheus_temperature: float = Field(0.6, ge=0.0, le=2.0)
    orpheus_top_p: float = Field(0.9, gt=0.0, le=1.0)
    orpheus_repetition_penalty: float = Field(1.1, ge=1.1, le=2.0)
    orpheus_timeout_s: float = Field(120.0, gt=0)
    orpheus_extra_body: str = ""  # JSON object sent as-is to the completions upstream
    llamacpp_batch_size: int = Field(512, ge=1)
    llamacpp_ubatch: int = Field(512, ge=1)

    # --- network upstreams (every network adapter; its URL setting may list several)
    upstream_connect_timeout_s: float = Field(5.0, gt=0)
    upstream_read_timeout_s: float = Field(30.0, gt=0)
    upstream_backoff_s: float = Field(5.0, gt=0)  # a failed upstream rests this long (doubling)

    # --- openai-style upstream
    openai_tts_url: str = "https://api.openai.com/v1/audio/speech"
    openai_tts_api_key: str | None = None
    openai_tts_model: str = "tts-1"

    # --- rate control (orchestrator)
    playback_buffer_ms: float = Field(300, ge=20, le=10_000)
    buffer_min_ms: float = Field(200, ge=0)
    buffer_max_ms: float = Field(500, ge=20)
    parallel_streams: int = Field(4, ge=1, le=256)
    queue_max: int = Field(16, ge=0)
    queue_timeout_s: float = Field(10.0, ge=0)
    chunk_lock: int | None = None  # fixes the chunk size (tokens or ms) when set
    first_segment_chars: int = Field(48, ge=8)
    max_segment_chars: int = Field(400, ge=40)
    stall_timeout_ms: float = Field(4000, ge=50)

    # --- realtime transports
    webrtc_host_addresses: str | None = None  # comma list; default: every interface
    webrtc_idle_timeout_s: float = Field(300, gt=0)
    vad_aggressiveness: int = Field(2, ge=0, le=3)
    vad_onset_ms: int = Field(60, ge=20, le=1000)
    ws_max_lead_ms: float = Field(500, ge=40)

    @field_validator("fallback_backend", "default_voice", "piper_voice", "snac_model",
                     "orpheus_gguf", "chunk_lock", "synthetic_stall_after",
                     "webrtc_host_addresses", "snac_device", "snac_onnx", "piper_voices_dir",
                     "openai_tts_api_key", "snac_threads", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("orpheus_extra_body")
    @classmethod
    def _json_object(cls, v: str) -> str:
        if v:
            import json

            if not isinstance(json.loads(v), dict):
                raise ValueError("must be a JSON object")
        return v

    @field_validator("snac_kept_slice")
    @classmethod
    def _slice(cls, v: str) -> str:
        start, end = (int(x) for x in v.split(","))
        if not 0 <= start < end or (end - start) % 2048:
            raise ValueError("need 'start,end' with start < end, a whole number of frames")
        return v

    @model_validator(mode="after")
    def _buffer_bounds(self) -> Settings:
        if not self.buffer_min_ms <= self.playback_buffer_ms <= self.buffer_max_ms:
            raise ValueError("need BUFFER_MIN_MS <= PLAYBACK_BUFFER_MS <= BUFFER_MAX_MS")
        return self

    @property
    def enabled_backends(self) -> list[str]:
        return [b.strip() for b in self.backends.split(",") if b.strip()]

    @property
    def host_addresses(self) -> list[str] | None:
        if not self.webrtc_host_addresses:
            return None
        return [a.strip() for a in self.webrtc_host_addresses.split(",") if a.strip()]


def field_names() -> set[str]:
    return set(Settings.model_fields)


def read_env_file(path: Path | None) -> dict[str, str]:
    if path is None or not path.exists():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


class ConfigSource(BaseModel):
    """Where settings came from, so a reload can re-apply the layers in order."""

    env_file: Path | None = Path(".env")
    overrides: dict[str, Any] = {}


def build_settings(source: ConfigSource, environ: dict[str, str] | None = None) -> Settings:
    """defaults < .env < environment < runtime overrides; unknown .env keys are warned about."""
    environ = dict(os.environ if environ is None else environ)
    names = field_names()
    values: dict[str, Any] = {}
    for key, value in read_env_file(source.env_file).items():
        if key.lower() in names:
            values[key.lower()] = value
        else:
            log.warning("unknown key in %s: %s", source.env_file, key)
    for key, value in environ.items():
        if key.lower() in names:
            values[key.lower()] = value
    values.update(source.overrides)
    return Settings.model_validate(values)


def apply_update(current: Settings, update: dict[str, Any]) -> tuple[Settings, list[str]]:
    """Validate a sparse update; return the new settings and the unknown keys (not applied).

    Raises pydantic.ValidationError when a known key has a bad value.
    """
    names = field_names()
    known = {k.lower(): v for k, v in update.items() if k.lower() in names}
    unknown = [k for k in update if k.lower() not in names]
    merged = current.model_dump() | known
    return Settings.model_validate(merged), unknown


__all__ = [
    "ConfigSource",
    "Settings",
    "ValidationError",
    "apply_update",
    "build_settings",
    "field_names",
    "read_env_file",
]
