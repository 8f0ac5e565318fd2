"""The largest load a subject holds, found with few probes: short probes double the load until
one fails, bisect between the last held and the first failed, then a long probe confirms the
edge (a failed confirm steps down and confirms again).

A short probe brackets; only the long one decides: a load held for 30 s can still fail over
3 minutes (a rarer long reply, a burst of arrivals), and the figure is the long probe's.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    load: int
    confirm: bool  # a long probe (decides) or a short one (brackets)


@dataclass
class EdgeSearch:
    """`next()` says what to probe, `record()` what it gave, until `done`; then `result` is
    the largest confirmed load (0: even `start` failed its short probe)."""

    start: int = 1
    limit: int = 256  # never probe more than this
    step_pct: float = 10.0  # bisect until the bracket is this narrow (or 1)
    confirms: int = 3  # long probes at most
    held: int = 0  # the largest load a short probe held
    failed: int | None = None  # the smallest load a probe failed
    result: int | None = None
    done: bool = False
    history: list[tuple[int, bool, bool]] = field(default_factory=list)  # load, confirm, held
    _confirm_at: int | None = None
    _confirmed_fails: int = 0

    def next(self) -> Step | None:
        if self.done:
            return None
        if self._confirm_at is not None:
            return Step(self._confirm_at, True)
        if self.failed is None:  # doubling
            return Step(min(self.limit, max(self.start, 2 * self.held)), False)
        if self.failed - self.held > max(1, int(self.held * self.step_pct / 100)):
            return Step((self.held + self.failed) // 2, False)
        if self.held == 0:  # even the smallest load failed
            self.result, self.done = 0, True
            return None
        self._confirm_at = self.held
        return Step(self.held, True)

    def record(self, step: Step, held: bool) -> None:
        self.history.append((step.load, step.confirm, held))
        if step.confirm:
            self._confirm_at = None
            if held:
                self.result, self.done = step.load, True
                return
            self._confirmed_fails += 1
            self.failed = step.load
            lower = max(1, min(step.load - 1, int(step.load * (1 - self.step_pct / 100))))
            if self._confirmed_fails >= self.confirms or step.load <= 1:
                self.result, self.done = 0 if step.load <= 1 else None, True
                return
            self.held = lower
            self._confirm_at = lower  # the short probes above it held: confirm straight away
            return
        if held:
            self.held = max(self.held, step.load)
            if step.load >= self.limit:
                self._confirm_at = step.load
        else:
            self.failed = step.load if self.failed is None else min(self.failed, step.load)


__all__ = ["EdgeSearch", "Step"]
