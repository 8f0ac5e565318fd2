"""The process's C heap: hand its free pages back to the OS.

glibc's malloc keeps what a burst freed (a model parsed and cut, a batch of runs' buffers, a
closed session's codec state) and gives it back only from the top of the heap; `malloc_trim`
returns every free page. Elsewhere (musl, macOS) there is nothing to call.
"""

from __future__ import annotations

import ctypes


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc's malloc_trim; elsewhere nothing)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


__all__ = ["release_free_heap"]
