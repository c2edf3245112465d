"""Video frame buffers: yuv420p frames, zero-copy plane views, black frames.

Every source in this package produces ``yuv420p`` frames, the format aiortc's
VP8 and H.264 encoders consume, so no colour conversion happens between a
source and the encoder. Frames are never reused once handed out: the encoder
reads them on an executor thread while the next one is being made.

A frame handed to several consumers (:mod:`callapp.media.fanout`, the
recorder) is shared, never copied, and nobody may write its pixels. Its
header is another matter: aiortc's H.264 encoder rescales ``pts`` to 1/30 s
and sets ``pict_type`` on the frame it is given, in place, on its executor
thread. So whoever needs other timing (or hands a frame to such a consumer)
takes a :func:`frame_view`: a new header over the same pixel buffers.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import numpy.typing as npt
from av import VideoFrame

VIDEO_CLOCK_RATE = 90_000
"""RTP video clock: frame ``pts`` count ticks of 1/90000 s."""

VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_RATE)

# BT.601 limited range, the range libvpx and browsers assume for yuv420p.
BLACK_Y = 16
NEUTRAL_UV = 128

Plane = npt.NDArray[np.uint8]

logger = logging.getLogger(__name__)
_said_copying = False  # frame_view logs once that it has to copy


def check_size(width: int, height: int) -> None:
    """Raise ValueError unless ``width`` x ``height`` suits a yuv420p frame.

    Both must be even (chroma is subsampled 2x2) and at least 16.
    """
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"frame size must be even and at least 16x16, got {width}x{height}")


def plane_views(frame: VideoFrame) -> tuple[Plane, Plane, Plane]:
    """The Y, U and V planes of a ``yuv420p`` frame as writable numpy views.

    No copy is made: writing to a view writes to the frame. Each view is
    cropped to the visible width, so rows may be strided (FFmpeg pads lines
    to ``line_size``). Raises ValueError for any other pixel format.
    """
    if frame.format.name != "yuv420p":
        raise ValueError(f"expected a yuv420p frame, got {frame.format.name}")
    views = []
    for plane in frame.planes:
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8)
        rows = rows.reshape(plane.height, plane.line_size)
        views.append(rows[:, : plane.width])
    y, u, v = views
    return y, u, v


def new_frame(width: int, height: int) -> VideoFrame:
    """A fresh ``yuv420p`` frame whose pixels are uninitialised."""
    return VideoFrame(width=width, height=height, format="yuv420p")


def black_frame(width: int, height: int) -> VideoFrame:
    """A fresh black ``yuv420p`` frame (Y=16, U=V=128), pts unset."""
    frame = new_frame(width, height)
    y, u, v = plane_views(frame)
    y.fill(BLACK_Y)
    u.fill(NEUTRAL_UV)
    v.fill(NEUTRAL_UV)
    return frame


def frame_view(frame: VideoFrame) -> VideoFrame:
    """A new frame showing ``frame``'s picture without copying it: its own header, shared pixels.

    The view starts with ``frame``'s ``pts``, ``time_base``, colour space and
    range; changing any of them (or ``pict_type``, or what an encoder does to
    them) on either frame leaves the other alone. The pixel buffers are
    reference-counted by FFmpeg, so the view stays valid after ``frame`` is
    gone, on any thread; writing pixels through one writes both, so nobody
    may. Costs about 10 us (an ``AVFrame`` and one DLPack import per plane).

    Needs PyAV's planar DLPack import (PyAV 18 has it; ``yuv420p`` and other
    8/16-bit planar formats). Where PyAV lacks it, the pixels are copied
    instead: same contract, just not free.
    """
    global _said_copying
    try:
        view = VideoFrame.from_dlpack(tuple(frame.planes), format=frame.format.name)
    except (AttributeError, TypeError, ValueError, NotImplementedError, BufferError) as exc:
        # Old PyAV (no from_dlpack, or planes without __dlpack__), or a format it
        # cannot import: correctness first.
        if not _said_copying:
            _said_copying = True
            logger.info("frames: PyAV cannot share frame buffers (%s); copying them", exc)
        view = _copy_pixels(frame)
    view.pts = frame.pts
    if frame.time_base is not None:  # PyAV takes only a Fraction; a new frame has None
        view.time_base = frame.time_base
    view.colorspace = frame.colorspace
    view.color_range = frame.color_range
    return view


def _copy_pixels(frame: VideoFrame) -> VideoFrame:
    """A new frame of ``frame``'s size and format holding a copy of its pixels (any format)."""
    copy = VideoFrame(width=frame.width, height=frame.height, format=frame.format.name)
    for src, dst in zip(frame.planes, copy.planes, strict=True):
        # Rows are padded to line_size, differently per frame; copy the part both have.
        width = min(src.line_size, dst.line_size)
        src_rows = np.frombuffer(memoryview(src), dtype=np.uint8).reshape(src.height, -1)
        dst_rows = np.frombuffer(memoryview(dst), dtype=np.uint8).reshape(dst.height, -1)
        dst_rows[:, :width] = src_rows[:, :width]
    return copy


def luma_view(frame: VideoFrame) -> Plane:
    """The luma (Y) plane of a ``yuv420p`` frame as a numpy view: no copy, no conversion.

    Cheap enough to call per frame, e.g. to measure brightness, detect a
    frozen or black picture, or compare frames in tests. The view shares the
    frame's memory; copy it to keep it. For RGB use ``frame.to_ndarray(
    format="rgb24")``, which converts (the UI does that, not this package).
    """
    return plane_views(frame)[0]
