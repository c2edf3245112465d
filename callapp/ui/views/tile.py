"""One person's tile: their video, their name, and what they said about themselves."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent, QResizeEvent
from PySide6.QtWidgets import QLabel, QWidget

from callapp.call.state import LegSnapshot
from callapp.ui.logic import wording
from callapp.ui.logic.tiles import DEFAULT_ASPECT
from callapp.ui.video_view import VideoView
from callapp.ui.views.style import OVERLAY


class Tile(QWidget):
    """A peer's video with name, badges (muted, camera off, sharing) and verification code."""

    clicked = Signal(str)  # peer id
    aspectChanged = Signal()

    def __init__(self, peer_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.peer_id = peer_id
        self.setObjectName("peerTile")
        self.video = VideoView(self, placeholder="Connecting…")
        self.video.setObjectName("peerVideo")
        self.video.setMinimumSize(1, 1)
        self.name_label = QLabel(self)
        self.name_label.setObjectName("tileName")
        self.name_label.setStyleSheet(OVERLAY + " padding: 2px 8px;")
        self.badges_label = QLabel(self)
        self.badges_label.setObjectName("tileBadges")
        self.badges_label.setStyleSheet(OVERLAY + " padding: 2px 8px;")
        self.code_label = QLabel(self)
        self.code_label.setObjectName("tileCode")
        self.code_label.setStyleSheet(OVERLAY + " padding: 2px 8px;")
        self.code_label.setVisible(False)
        self._aspect = DEFAULT_ASPECT
        self._show_code = False
        self.leg: LegSnapshot | None = None
        self.setAccessibleName("Video")

    @property
    def aspect(self) -> float:
        """The shape of the peer's picture (width / height), once a frame said it."""
        return self._aspect

    def show_frame(self, frame: Any) -> None:
        width, height = int(frame.width), int(frame.height)
        if width > 0 and height > 0 and abs(width / height - self._aspect) > 0.01:
            self._aspect = width / height
            self.aspectChanged.emit()
        self.video.show_frame(frame)

    def show_leg(self, leg: LegSnapshot) -> None:
        self.leg = leg
        name = wording.leg_name(leg)
        self.name_label.setText(name)
        found = wording.badges(leg)
        self.badges_label.setText(" · ".join(found))
        self.badges_label.setVisible(bool(found))
        self.code_label.setText(wording.code_text(leg))
        self.video.set_placeholder(wording.placeholder_text(leg))
        camera_off = leg.presence is not None and leg.presence.camera_off
        if camera_off:
            self.video.clear()
        description = ", ".join([name, *found]) if found else name
        self.setAccessibleName(f"Video of {name}")
        self.setAccessibleDescription(description)
        self.setToolTip(description)
        self._place()

    def set_code_visible(self, shown: bool) -> None:
        self._show_code = shown
        self.code_label.setVisible(shown)
        self._place()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() is Qt.MouseButton.LeftButton:
            self.clicked.emit(self.peer_id)
        super().mouseReleaseEvent(event)

    def _place(self) -> None:
        self.video.setGeometry(0, 0, self.width(), self.height())
        pad = 8
        for label in (self.name_label, self.badges_label, self.code_label):
            label.adjustSize()
        self.name_label.move(pad, self.height() - self.name_label.height() - pad)
        self.badges_label.move(pad, pad)
        self.code_label.move(
            max(pad, self.width() - self.code_label.width() - pad),
            self.height() - self.code_label.height() - pad,
        )
        for label in (self.name_label, self.badges_label, self.code_label):
            label.raise_()
