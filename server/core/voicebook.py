"""The seam between the stream core and the voice library (server/voices): a stored voice id
stands for a backend, an engine voice (or a reference clip) and defaults, resolved once per
stream in `Orchestrator.open`, whatever face the id came from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from server.core.stream import StreamSpec


class Lease(Protocol):
    """A stream's hold on a stored voice's files: a voice deleted meanwhile keeps them until
    every stream holding them has ended."""

    def release(self) -> None: ...


class VoiceBook(Protocol):
    def knows(self, voice: str) -> bool:
        """Whether `voice` is a stored voice's id."""

    def apply(self, spec: StreamSpec) -> tuple[StreamSpec, Lease | None]:
        """`spec` with its stored voice (if it names one) replaced by what it stands for:
        backend, engine voice or reference clip, and the defaults the request left unset.
        Raises BadRequest when the voice cannot be used as asked (a clone on an engine that
        cannot clone, a preset asked for on another backend)."""


__all__ = ["Lease", "VoiceBook"]
