"""Processes as the kernel lists them (/proc), for tests that check what a command left behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    pid: int
    name: str  # the executable's name (comm)
    state: str  # R, S, Z (zombie: already dead), ...
    ppid: int
    pgrp: int
    cmdline: str


def processes() -> Iterator[Proc]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone while we looked
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid, pgrp = stat[stat.rindex(")") + 1 :].split()[:3]
        yield Proc(int(entry.name), name, state, int(ppid), int(pgrp), cmdline)


def live_children(*, name: str | None = None, marker: str | None = None) -> list[Proc]:
    """This process's running (not zombie) children, by executable name or command-line text."""
    return [p for p in processes() if p.ppid == os.getpid() and p.state != "Z"
            and (name is None or p.name == name) and (marker is None or marker in p.cmdline)]


def live_in_group(pgrp: int) -> list[Proc]:
    """Running (not zombie) processes of process group `pgrp`, wherever they were reparented."""
    return [p for p in processes() if p.pgrp == pgrp and p.state != "Z"]
