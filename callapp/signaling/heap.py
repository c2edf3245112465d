"""Give freed heap memory back to the system after a burst of closed connections.

Queued messages are Python strings of up to 64 KiB: too large for Python's
own allocator, too small for glibc's ``mmap`` threshold, so they live in
glibc's heap. Freed, they leave holes that glibc keeps (it only shrinks the
heap from the top), and the process's RSS stays where the attack took it
although nothing references the memory any more. ``malloc_trim(0)`` returns
every whole free page (glibc 2.8 and later use ``madvise`` inside the heap
too). It costs a walk over the heap, milliseconds for hundreds of MiB, so
:class:`Trimmer` asks for it only after enough bytes were freed and at most
once per ``min_interval``. On a libc without ``malloc_trim`` (musl, macOS,
Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from typing import Final

from callapp.signaling.limits import Clock

__all__ = ["Trimmer", "malloc_trim"]

#: Freed bytes that make a trim worth its walk over the heap.
DEFAULT_THRESHOLD: Final = 8 * 2**20


def _load() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_size_t,)
    function.restype = ctypes.c_int
    return function


_MALLOC_TRIM = _load()


def malloc_trim() -> bool:
    """Ask glibc to return free heap pages; False where there is no ``malloc_trim``."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class Trimmer:
    """Decides when freed bytes are worth a :func:`malloc_trim` (sans-I/O).

    :meth:`freed` adds bytes released; :meth:`due` says whether to trim now
    (at least ``threshold`` bytes freed since the last trim, which was at
    least ``min_interval`` seconds ago) and, if so, resets the count.
    """

    def __init__(
        self,
        threshold: int = DEFAULT_THRESHOLD,
        min_interval: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.min_interval = min_interval
        self._clock = clock
        self._freed = 0
        self._last = clock() - min_interval

    @property
    def pending(self) -> int:
        """Bytes freed since the last trim."""
        return self._freed

    def freed(self, size: int) -> None:
        self._freed += max(0, size)

    def due(self) -> bool:
        now = self._clock()
        if self._freed < self.threshold or now - self._last < self.min_interval:
            return False
        self._freed = 0
        self._last = now
        return True
