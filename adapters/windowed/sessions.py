"""A graph's two onnxruntime sessions, and the decoder's pace that sizes windows."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class Sessions:
    """One graph in two sessions over the same model: `fast` uses both cores for a run alone
    (lowest latency while the engine is otherwise idle), `lean` one intra-op thread, so that
    two runs side by side share the two cores without oversubscription
    (reference/engines.md: 23x aggregate against 18x for Piper)."""

    fast: Any
    lean: Any

    @cached_property
    def inputs(self) -> list[str]:
        return [i.name for i in self.lean.get_inputs()]

    @cached_property
    def outputs(self) -> list[str]:
        return [o.name for o in self.lean.get_outputs()]

    def run(self, alone: bool, tensors: dict[str, Any], run_options: Any,
            outputs: list[str] | None = None) -> dict[str, Any]:
        """`outputs` (default: all) by name, fed what the graph reads of `tensors` (the
        rest, e.g. `sid` of a single-speaker voice, is left out)."""
        session = self.fast if alone else self.lean
        feeds = {name: tensors[name] for name in self.inputs}
        names = outputs or self.outputs
        return dict(zip(names, session.run(names, feeds, run_options), strict=True))


@dataclass
class Pace:
    """The decoder's recent wall time per frame, alone on both cores and sharing them (an
    EWMA over its runs, the other core's memory traffic included): what sizes the window a
    listener's lead can afford."""

    ms: dict[bool, float] = field(default_factory=dict)  # alone? -> ms per frame

    def observe(self, alone: bool, ms: float, frames: int) -> None:
        if frames > 0:
            x, old = ms / frames, self.ms.get(alone)
            self.ms[alone] = x if old is None else 0.8 * old + 0.2 * x

    def ms_per_frame(self, alone: bool) -> float | None:
        return self.ms.get(alone)


__all__ = ["Pace", "Sessions"]
