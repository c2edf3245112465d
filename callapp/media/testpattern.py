"""A synthetic video source: colour bars, a moving square, a clock and a counter.

The pattern makes problems visible at a glance: the square moves every frame
(a freeze stops it), the counter shows dropped frames, the wall clock lets two
screens be compared for latency, and an optional label says why the pattern
is shown ("No camera").

Frames are drawn straight into ``yuv420p`` planes. Everything static (bars,
label, the dark band behind the text) is rendered once; per frame the work is
three plane copies, one filled square and one line of text (drawn into the
frame itself, unless its rows are padded).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from aiortc import VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from callapp.media.clock import Clock, Pacer
from callapp.media.frames import (
    BLACK_Y,
    NEUTRAL_UV,
    VIDEO_TIME_BASE,
    Plane,
    check_size,
    new_frame,
    plane_views,
)

# 75% SMPTE bars (white, yellow, cyan, green, magenta, red, blue) in BT.601
# limited-range YUV.
_BARS = (
    (180, 128, 128),
    (168, 44, 136),
    (145, 147, 44),
    (133, 63, 52),
    (63, 193, 204),
    (51, 109, 212),
    (28, 212, 120),
)
_WHITE_Y = 235
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# The widest line the renderer draws; used once to size the font.
_TEMPLATE = "00:00:00.000  +00:00:00.000  #000000"


class PatternRenderer:
    """Draws test-pattern frames of one size; see the module docstring.

    ``render`` is deterministic in its arguments, so tests can render any
    frame without a clock.
    """

    def __init__(self, width: int, height: int, *, label: str | None = None) -> None:
        check_size(width, height)
        self.width = width
        self.height = height
        self.label = label
        self._y, self._u, self._v = self._background(width, height)
        # Text band at the bottom: luma-only drawing over neutral chroma keeps
        # the text white, so chroma needs no per-frame work there.
        band_h = max(16, (height // 10) & ~1)
        self._band_top = height - band_h
        self._scale = self._fit_scale(_TEMPLATE, width * 0.95, band_h * 0.5)
        self._thickness = max(1, round(self._scale * 2))
        self._band = np.empty((band_h, width), np.uint8)
        (_, text_h), _ = cv2.getTextSize(_TEMPLATE, _FONT, self._scale, self._thickness)
        self._text_org = (max(2, width // 40), (band_h + text_h) // 2)
        self._square = max(8, (height // 8) & ~1)

    def _background(self, width: int, height: int) -> tuple[Plane, Plane, Plane]:
        y = np.empty((height, width), np.uint8)
        u = np.empty((height // 2, width // 2), np.uint8)
        v = np.empty((height // 2, width // 2), np.uint8)
        for i, (by, bu, bv) in enumerate(_BARS):
            x0 = (i * width // len(_BARS)) & ~1
            x1 = ((i + 1) * width // len(_BARS)) & ~1 if i + 1 < len(_BARS) else width
            y[:, x0:x1] = by
            u[:, x0 // 2 : x1 // 2] = bu
            v[:, x0 // 2 : x1 // 2] = bv
        band_h = max(16, (height // 10) & ~1)
        y[height - band_h :] = BLACK_Y
        u[(height - band_h) // 2 :] = NEUTRAL_UV
        v[(height - band_h) // 2 :] = NEUTRAL_UV
        if self.label:
            label_h = max(16, (height // 8) & ~1)
            y[:label_h] = BLACK_Y
            u[: label_h // 2] = NEUTRAL_UV
            v[: label_h // 2] = NEUTRAL_UV
            scale = self._fit_scale(self.label, width * 0.9, label_h * 0.55)
            thickness = max(1, round(scale * 2))
            (text_w, text_h), _ = cv2.getTextSize(self.label, _FONT, scale, thickness)
            org = ((width - text_w) // 2, (label_h + text_h) // 2)
            cv2.putText(y, self.label, org, _FONT, scale, _WHITE_Y, thickness, cv2.LINE_AA)
        return y, u, v

    @staticmethod
    def _fit_scale(text: str, max_width: float, max_height: float) -> float:
        (w, h), _ = cv2.getTextSize(text, _FONT, 1.0, 2)
        return max(0.3, min(max_width / w, max_height / h))

    def render(self, index: int, elapsed: float, wall: float) -> VideoFrame:
        """Frame number ``index``: ``elapsed`` seconds since start, ``wall`` a Unix time.

        Returns a new ``yuv420p`` frame with pts unset.
        """
        frame = new_frame(self.width, self.height)
        y, u, v = plane_views(frame)
        y[:] = self._y
        u[:] = self._u
        v[:] = self._v

        # The square bounces left-right and up-down on two periods, so every
        # frame differs from its neighbours and from the one a period later.
        s = self._square
        x = _bounce(index * 7, self.width - s) & ~1
        top = 0 if not self.label else max(16, (self.height // 8) & ~1)
        yy = top + (_bounce(index * 3, self._band_top - top - s) & ~1)
        y[yy : yy + s, x : x + s] = _WHITE_Y
        u[yy // 2 : (yy + s) // 2, x // 2 : (x + s) // 2] = NEUTRAL_UV
        v[yy // 2 : (yy + s) // 2, x // 2 : (x + s) // 2] = NEUTRAL_UV

        # The text is drawn straight into the plane when its rows are contiguous
        # (no padding: the usual case); otherwise into a contiguous scratch band,
        # then copied in, because cv2 may silently draw into a copy of a strided view.
        band = y[self._band_top :]
        scratch = not band.flags.c_contiguous
        if scratch:
            band = self._band
            band[:] = self._y[self._band_top :]
        wall_s = time.strftime("%H:%M:%S", time.localtime(wall))
        millis = int(wall * 1000) % 1000
        text = f"{wall_s}.{millis:03d}  +{_hms(elapsed)}  #{index:06d}"
        cv2.putText(
            band, text, self._text_org, _FONT, self._scale, _WHITE_Y, self._thickness, cv2.LINE_AA
        )
        if scratch:
            y[self._band_top :] = band
        return frame


def _bounce(step: int, span: int) -> int:
    """A triangle wave over ``0..span``: position after ``step`` pixels of travel."""
    if span <= 0:
        return 0
    phase = step % (2 * span)
    return phase if phase <= span else 2 * span - phase


def _hms(seconds: float) -> str:
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}.{millis:03d}"


class TestPatternTrack(VideoStreamTrack):
    """A live video track of the test pattern, paced at ``fps``.

    Frame ``n`` has ``pts = round(n * 90000 / fps)`` in a 1/90000 time base;
    pacing follows ``clock`` (monotonic), and after a stall longer than half a
    second the track skips ahead instead of sending the missed frames at once,
    so pts then jump by a multiple of the frame interval.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        *,
        label: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        self.renderer = PatternRenderer(width, height, label=label)
        self._pacer = Pacer(fps, clock=clock)
        self._clock = clock
        self._started: float | None = None

    @property
    def fps(self) -> float:
        """Frames per second this track is paced at."""
        return self._pacer.fps

    @property
    def frames_sent(self) -> int:
        """How many frame slots have passed (skipped ones included)."""
        return self._pacer.index + 1

    async def recv(self) -> VideoFrame:
        """The next frame, once its time has come. Raises MediaStreamError once stopped."""
        if self.readyState != "live":
            raise MediaStreamError
        due = await self._pacer.next()
        if self.readyState != "live":
            raise MediaStreamError
        if self._started is None:
            self._started = due
        frame = self.renderer.render(self._pacer.index, due - self._started, time.time())
        frame.pts = self._pacer.pts()
        frame.time_base = VIDEO_TIME_BASE
        return frame
