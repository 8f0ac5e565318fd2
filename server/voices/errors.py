"""Why a voice-library request was refused; each error carries its HTTP status and field.

    BadRequest (adapters/errors.py)
     +-- VoiceError            a library request cannot be done as asked (400)
          +-- VoiceNotFound    no stored voice has that id (404)
          +-- VoiceConflict    the name is taken, or another upload of it is under way (409)
          +-- ClipRejected     an uploaded file is refused: too large (413), not audio (415),
                               malformed, too long, too short or silent (422)

They are BadRequests so that every face's existing error translation answers them with their
status; the ElevenLabs face shapes them as ElevenLabs does.
"""

from __future__ import annotations

from adapters.errors import BadRequest


class VoiceError(BadRequest):
    """A voice-library request that cannot be done as asked."""


class VoiceNotFound(VoiceError):
    def __init__(self, voice_id: str) -> None:
        super().__init__(f"no stored voice {voice_id!r}", field="voice_id", status=404)
        self.voice_id = voice_id


class VoiceConflict(VoiceError):
    def __init__(self, message: str, *, field: str = "name") -> None:
        super().__init__(message, field=field, status=409)


class ClipRejected(VoiceError):
    """An uploaded file that cannot be a reference clip; the message says why."""

    def __init__(self, message: str, *, status: int = 422, field: str = "files") -> None:
        super().__init__(message, field=field, status=status)


__all__ = ["ClipRejected", "VoiceConflict", "VoiceError", "VoiceNotFound"]
