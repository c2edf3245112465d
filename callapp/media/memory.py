"""Giving video frames' memory back: large buffers straight from ``mmap``, not glibc's heaps.

A video frame is one buffer (1.4 MB at 1280x720, 460 kB at 640x480), made
and dropped 30 times a second by every stage: the source, the views' RGB
conversions, the recorder. glibc's ``malloc`` serves a request at or above
``M_MMAP_THRESHOLD`` (128 KiB to start with) with a mapping of its own and
unmaps it on ``free``, but unless the threshold was set explicitly, every
such ``free`` raises the threshold to the freed size (up to 32 MiB). After
the first frame has gone, frames come from the heaps instead, one per thread
that allocates (the event loop, decoders, encoders, Qt), and a heap only
shrinks from its top: frames freed below live ones stay resident. Measured
here on the desktop app in a 1280x720 call (``bench/media.py``'s GUI case,
2026-12-01, load ~4): RSS peaking at 396-414 MiB and swinging by 40-90 MiB
within 15 s, against 257-263 MiB, flat, with the threshold pinned.

:func:`map_large_buffers` pins it (``mallopt`` turns the raising off) at
:data:`LARGE_BUFFER`, above a 640x480 frame and below a 1280x720 one: the
price of a mapping is faulting its pages in afresh, which a 1280x720 stream
pays (about 2% of a core for 30 fresh frames a second) and smaller frames,
whose heap churn stays small, do not. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

logger = logging.getLogger(__name__)

#: Buffers this large and larger get a mapping of their own.
LARGE_BUFFER = 512 * 1024

_M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
_pinned: bool | None = None


def map_large_buffers() -> bool:
    """Pin glibc's mmap threshold at :data:`LARGE_BUFFER`; True if it is (now or before).

    Process-wide, idempotent, safe to call from anywhere; False where the C
    library is not glibc (or refuses).
    """
    global _pinned
    if _pinned is None:
        _pinned = _mallopt(_M_MMAP_THRESHOLD, LARGE_BUFFER)
        if _pinned:
            logger.debug("malloc: buffers of %d bytes and more are mapped", LARGE_BUFFER)
    return _pinned


def _mallopt(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl has no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(option, value))


__all__ = ["LARGE_BUFFER", "map_large_buffers"]
