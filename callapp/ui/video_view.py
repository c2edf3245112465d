"""A widget that paints video frames, latest-frame-wins, aspect-correct.

Frames are offered (``show_frame``) as fast as they arrive; the widget keeps
only the newest and asks Qt for a repaint. Qt coalesces repaints, so when
painting lags, frames in between are dropped before any conversion work.
Conversion happens once per paint, straight to the displayed size.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from callapp.ui.frames import ConvertedFrame, fit_size, to_qimage

BACKGROUND = QColor(24, 26, 30)
PLACEHOLDER_TEXT = QColor(140, 146, 156)


class VideoView(QWidget):
    """Paints the newest frame offered, scaled to fit, optionally mirrored."""

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        mirrored: bool = False,
        placeholder: str = "No video",
    ) -> None:
        super().__init__(parent)
        self._mirrored = mirrored
        self._placeholder = placeholder
        self._pending: Any = None  # newest av.VideoFrame not yet converted
        self._shown: ConvertedFrame | None = None
        self.frames_received = 0
        self.frames_painted = 0
        self.paint_seconds = 0.0  # UI-thread time spent converting + painting
        #: ``time.monotonic()`` of the first and the latest frame offered.
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(96, 72)

    # -- feeding -----------------------------------------------------------------

    def show_frame(self, frame: Any) -> None:
        """Offer an ``av.VideoFrame``; only the newest one is ever converted."""
        self._pending = frame
        self.frames_received += 1
        now = time.monotonic()
        if self.first_frame_at is None:
            self.first_frame_at = now
        self.last_frame_at = now
        self.update()

    def clear(self) -> None:
        """Drop any picture and show the placeholder."""
        self._pending = None
        self._shown = None
        self.update()

    @property
    def has_picture(self) -> bool:
        return self._shown is not None or self._pending is not None

    @property
    def picture_size(self) -> tuple[int, int] | None:
        """The size of the picture shown (the source frame's), or None."""
        return self._shown.source_size if self._shown is not None else None

    @property
    def frames_dropped(self) -> int:
        """Frames offered but replaced by a newer one before they were painted."""
        return max(0, self.frames_received - self.frames_painted - (self._pending is not None))

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    @property
    def placeholder(self) -> str:
        return self._placeholder

    @property
    def mirrored(self) -> bool:
        return self._mirrored

    def set_mirrored(self, mirrored: bool) -> None:
        self._mirrored = mirrored
        self.update()

    # -- painting ----------------------------------------------------------------

    def sizeHint(self) -> QSize:
        return QSize(640, 360)

    def target_rect(self, frame_w: int, frame_h: int) -> QRect:
        """Where a ``frame_w``x``frame_h`` picture goes: centred, aspect kept."""
        ratio = self.devicePixelRatioF()
        w, h = fit_size(frame_w, frame_h, int(self.width() * ratio), int(self.height() * ratio))
        lw, lh = round(w / ratio), round(h / ratio)
        return QRect((self.width() - lw) // 2, (self.height() - lh) // 2, lw, lh)

    def paintEvent(self, event: QPaintEvent) -> None:
        started = time.perf_counter()
        painter = QPainter(self)
        try:
            frame, self._pending = self._pending, None
            new = frame is not None
            if new:
                ratio = self.devicePixelRatioF()
                w, h = fit_size(
                    int(frame.width),
                    int(frame.height),
                    int(self.width() * ratio),
                    int(self.height() * ratio),
                )
                if w and h:
                    self._shown = to_qimage(frame, w, h)
                    self._shown.image.setDevicePixelRatio(ratio)
            if self._shown is None:
                painter.fillRect(self.rect(), BACKGROUND)
                self._paint_placeholder(painter)
                return
            src_w, src_h = self._shown.source_size
            target = self.target_rect(src_w, src_h)
            for bar in _bars(self.rect(), target):  # the picture covers the rest
                painter.fillRect(bar, BACKGROUND)
            if self._mirrored:
                painter.translate(self.width(), 0)
                painter.scale(-1.0, 1.0)
                target.moveLeft(self.width() - target.right() - 1)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(target, self._shown.image)
            if new:
                self.frames_painted += 1
        finally:
            painter.end()
            self.paint_seconds += time.perf_counter() - started

    def _paint_placeholder(self, painter: QPainter) -> None:
        painter.setPen(QPen(PLACEHOLDER_TEXT))
        font = QFont(painter.font())
        font.setPointSizeF(max(8.0, min(16.0, self.height() / 18)))
        painter.setFont(font)
        painter.drawText(
            self.rect().adjusted(8, 8, -8, -8),
            int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap),
            self._placeholder,
        )


def _bars(area: QRect, picture: QRect) -> list[QRect]:
    """The parts of ``area`` around a centred ``picture`` (letterbox / pillarbox bars)."""
    bars = [
        QRect(area.left(), area.top(), picture.left() - area.left(), area.height()),
        QRect(picture.right() + 1, area.top(), area.right() - picture.right(), area.height()),
        QRect(picture.left(), area.top(), picture.width(), picture.top() - area.top()),
        QRect(
            picture.left(), picture.bottom() + 1, picture.width(), area.bottom() - picture.bottom()
        ),
    ]
    return [bar for bar in bars if bar.width() > 0 and bar.height() > 0]
