"""Monotonic pacing and 90 kHz stamping shared by every source.

aiortc's ``VideoStreamTrack.next_timestamp`` paces from ``time.time()`` (the
wall clock, which can jump) at a fixed 30 fps and, after a stall, returns
frames back to back until it has caught up. :class:`Pacer` paces from
``time.monotonic()`` at any rate and skips ahead instead of bursting;
:class:`Timeline` turns monotonic instants into strictly increasing pts;
:func:`wait_event` is the one bounded wait for an event in a ``recv()``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from callapp.media.frames import VIDEO_CLOCK_RATE

Clock = Callable[[], float]


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` have passed; True if it was set.

    Every bounded wait inside a track's ``recv()`` goes through here, not
    ``asyncio.wait_for``: on Python 3.11, a cancellation that arrives as the
    event is set is swallowed by ``wait_for`` (it returns as if nothing had
    happened), so the task reading the track, a fan-out pump whose last
    consumer left, say, would go on reading. ``asyncio.timeout`` lets the
    cancellation through. Must run in a task.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


class Pacer:
    """Hands out frame deadlines ``start + index / fps`` and sleeps until each.

    The first call to :meth:`next` returns at once with index 0. If the caller
    falls more than ``max_lag`` seconds behind (a busy loop, a consumer that
    paused), the index jumps to the present rather than producing the missed
    frames in a burst; the index therefore only ever increases.
    """

    def __init__(self, fps: float, *, clock: Clock = time.monotonic, max_lag: float = 0.5) -> None:
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"fps must be a positive number, got {fps}")
        self.fps = fps
        self._clock = clock
        self._max_lag = max_lag
        self._start: float | None = None
        self.index = -1
        """Index of the frame last handed out; -1 before the first."""

    def reset(self) -> None:
        """Start over: the next call to :meth:`next` returns at once."""
        self._start = None

    def advance(self) -> float:
        """Move to the next frame and return its deadline without waiting."""
        now = self._clock()
        if self._start is None:
            # After a reset the index continues, so it never goes backwards.
            self.index += 1
            self._start = now - self.index / self.fps
            return now
        self.index += 1
        due = self._start + self.index / self.fps
        if now - due > self._max_lag:
            # The epsilon keeps float error from landing one frame short.
            self.index = math.floor((now - self._start) * self.fps + 1e-6)
            due = self._start + self.index / self.fps
        return due

    async def next(self) -> float:
        """Wait for the next frame's deadline; return it (a ``clock()`` instant)."""
        due = self.advance()
        delay = due - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)
        return due

    def pts(self) -> int:
        """The 90 kHz pts of the frame last handed out: ``round(index * 90000 / fps)``."""
        return round(self.index * VIDEO_CLOCK_RATE / self.fps)


class Timeline:
    """Maps monotonic instants to 90 kHz pts counted from the first stamp.

    Stamps are strictly increasing even if instants are not (two sources
    interleaved, a clamp after a switch): a stamp never repeats or goes back.
    """

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._origin: float | None = None
        self._last = -1

    def now(self) -> float:
        """The current instant of this timeline's clock."""
        return self._clock()

    def stamp(self, instant: float | None = None) -> int:
        """The pts for ``instant`` (default: now), greater than any before it."""
        if instant is None:
            instant = self._clock()
        if self._origin is None:
            self._origin = instant
        pts = max(round((instant - self._origin) * VIDEO_CLOCK_RATE), self._last + 1)
        self._last = pts
        return pts

    @property
    def last(self) -> int:
        """The last pts handed out, -1 if none."""
        return self._last
