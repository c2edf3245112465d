"""How good a connection is, in one word, from the numbers ``getStats`` gives.

Thresholds follow what people notice: a few percent of loss or a round trip
near 200 ms makes speech awkward ("weak"); a tenth lost, 400 ms or a picture
below 8 frames a second makes a call hard to follow ("bad").
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

from callapp.call.stats import CallStats


class Level(enum.StrEnum):
    GOOD = "good"
    WEAK = "weak"
    BAD = "bad"


_ORDER = {Level.GOOD: 0, Level.WEAK: 1, Level.BAD: 2}

#: (loss fraction, RTT ms, lowest fps) at which a connection becomes weak, then bad.
WEAK_AT = (0.02, 200.0, 18.0)
BAD_AT = (0.08, 400.0, 8.0)


@dataclass(frozen=True, slots=True)
class Quality:
    """One connection's quality and the numbers it comes from."""

    level: Level
    #: Fraction of packets lost (0..1), the worse of both directions.
    loss: float
    rtt_ms: float | None
    fps: float | None

    @property
    def label(self) -> str:
        """ "Good connection", "Weak connection", "Bad connection"."""
        return f"{self.level.value.capitalize()} connection"

    @property
    def details(self) -> str:
        """The numbers, for a tooltip: "Loss 1.0% · Round trip 35 ms · 29 fps"."""
        parts = [f"Loss {self.loss * 100:.1f}%"]
        if self.rtt_ms is not None:
            parts.append(f"Round trip {self.rtt_ms:.0f} ms")
        if self.fps is not None:
            parts.append(f"{self.fps:.0f} fps")
        return " · ".join(parts)


def assess(stats: CallStats | None, *, video_expected: bool = True) -> Quality | None:
    """The quality of one leg; None before there are numbers.

    ``video_expected`` False (the peer turned its camera off) leaves the
    frame rate out of the verdict.
    """
    if stats is None:
        return None
    loss = max(_fraction(stats.packet_loss), _fraction(stats.remote_packet_loss))
    rtt = stats.rtt_ms if stats.rtt_ms is not None and math.isfinite(stats.rtt_ms) else None
    fps = stats.fps_received if math.isfinite(stats.fps_received) else None
    judged_fps = fps if video_expected else None
    level = Level.GOOD
    for threshold, worse in ((WEAK_AT, Level.WEAK), (BAD_AT, Level.BAD)):
        if _reaches(loss, rtt, judged_fps, threshold):
            level = worse
    return Quality(level=level, loss=loss, rtt_ms=rtt, fps=fps)


def worst(qualities: Iterable[Quality | None]) -> Quality | None:
    """The worst of several legs' qualities (what the call's indicator shows)."""
    found = [q for q in qualities if q is not None]
    if not found:
        return None
    return max(found, key=lambda q: _ORDER[q.level])


def _fraction(value: float | None) -> float:
    if value is None or not math.isfinite(value):
        return 0.0
    return min(1.0, max(0.0, value))


def _reaches(
    loss: float, rtt: float | None, fps: float | None, at: tuple[float, float, float]
) -> bool:
    max_loss, max_rtt, min_fps = at
    if loss >= max_loss:
        return True
    if rtt is not None and rtt >= max_rtt:
        return True
    return fps is not None and fps < min_fps
