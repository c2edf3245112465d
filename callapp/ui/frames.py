"""av.VideoFrame -> QImage, cheaply: one swscale pass straight to the size shown.

PyAV's ``reformat`` converts and scales in one call (libswscale, GIL
released); the result's plane is wrapped by a QImage without a copy, in
Qt's fastest paint format (``RGB32``), so painting is a plain blit.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QImage

#: Byte order of QImage.Format_RGB32 (0xffRRGGBB as a native 32-bit word).
AV_RGB32 = "bgra" if sys.byteorder == "little" else "argb"
#: Never convert to more pixels than this on either side.
MAX_SIDE = 3840


def fit_size(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest ``src``-shaped size inside ``box`` (aspect kept, at least 1x1).

    Even widths keep libswscale on its fast paths.
    """
    if src_w <= 0 or src_h <= 0 or box_w <= 0 or box_h <= 0:
        return (0, 0)
    box_w, box_h = min(box_w, MAX_SIDE), min(box_h, MAX_SIDE)
    scale = min(box_w / src_w, box_h / src_h)
    w = max(2, int(src_w * scale) & ~1)
    h = max(1, int(src_h * scale))
    return (w, h)


@dataclass(frozen=True, slots=True)
class ConvertedFrame:
    """A QImage over the memory of ``keepalive`` (which must outlive the image)."""

    image: QImage
    keepalive: Any
    source_size: tuple[int, int]


def to_qimage(frame: Any, width: int | None = None, height: int | None = None) -> ConvertedFrame:
    """Convert (and scale) an ``av.VideoFrame`` to an RGB32 QImage of ``width``x``height``."""
    w = width or int(frame.width)
    h = height or int(frame.height)
    if (w, h) == (frame.width, frame.height):
        rgb = frame.reformat(format=AV_RGB32)
    else:  # fast bilinear: a third cheaper than swscale's default, no visible loss for video
        rgb = frame.reformat(width=w, height=h, format=AV_RGB32, interpolation="FAST_BILINEAR")
    plane = rgb.planes[0]
    image = QImage(memoryview(plane), w, h, int(plane.line_size), QImage.Format.Format_RGB32)
    return ConvertedFrame(
        image=image, keepalive=rgb, source_size=(int(frame.width), int(frame.height))
    )
