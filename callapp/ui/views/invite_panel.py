"""While nobody else is here: the invite link to send, with a Copy that says "Copied"."""

from __future__ import annotations

import segno
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from callapp.ui.views.style import OVERLAY

COPIED_MS = 2000
#: Pixels per QR module, and the quiet zone around the code, in modules (the standard's 4).
QR_SCALE = 4
QR_BORDER = 4


def qr_matrix(text: str) -> list[list[bool]]:
    """The QR code of ``text`` (error correction M, or better if it fits), dark = True."""
    code = segno.make(text, error="m", micro=False)
    return [[bool(module) for module in row] for row in code.matrix]


def qr_image(text: str, scale: int = QR_SCALE, border: int = QR_BORDER) -> QImage:
    """``text`` as a black-on-white QR code, ``scale`` pixels a module, ``border`` quiet modules."""
    matrix = qr_matrix(text)
    side = (len(matrix) + 2 * border) * scale
    image = QImage(side, side, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    try:
        black = QColor("black")
        for y, row in enumerate(matrix):
            for x, dark in enumerate(row):
                if dark:
                    painter.fillRect(
                        (x + border) * scale, (y + border) * scale, scale, scale, black
                    )
    finally:
        painter.end()
    return image


class InvitePanel(QFrame):
    copyClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("invitePanel")
        self.setStyleSheet(
            f"QFrame#invitePanel {{ {OVERLAY} }} QLabel {{ color: white; }}"
            " QLineEdit { padding: 4px; }"
        )
        self.setAccessibleName("Invite")
        column = QVBoxLayout(self)
        column.setContentsMargins(20, 16, 20, 16)
        self.title_label = QLabel()
        self.title_label.setObjectName("inviteTitle")
        self.title_label.setWordWrap(True)
        self.title_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        column.addWidget(self.title_label)
        row = QHBoxLayout()
        self.link_edit = QLineEdit()
        self.link_edit.setObjectName("inviteEdit")
        self.link_edit.setReadOnly(True)
        self.link_edit.setMinimumWidth(360)
        self.link_edit.setAccessibleName("Invite link")
        self.link_edit.setAccessibleDescription("Send this link to the people you want in the call")
        self.copy_button = QPushButton("Copy link")
        self.copy_button.setObjectName("copyInviteButton")
        self.copy_button.setAccessibleName("Copy the invite link")
        row.addWidget(self.link_edit, 1)
        row.addWidget(self.copy_button)
        column.addLayout(row)
        self.qr_label = QLabel()
        self.qr_label.setObjectName("inviteQr")
        self.qr_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.qr_label.setAccessibleName("QR code of the invite link")
        self.qr_label.setAccessibleDescription(
            "Scan it with a phone to open the call in its browser"
        )
        self.qr_label.setToolTip("Scan with a phone to join from its browser")
        self.qr_label.setVisible(False)
        column.addWidget(self.qr_label, 0, Qt.AlignmentFlag.AlignCenter)
        self.hint_label = QLabel()
        self.hint_label.setObjectName("inviteHint")
        self.hint_label.setWordWrap(True)
        self.hint_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        column.addWidget(self.hint_label)
        self._qr_text = ""
        self.copy_button.clicked.connect(self._copy)
        self._reset = QTimer(self)
        self._reset.setSingleShot(True)
        self._reset.timeout.connect(self._copied_over)
        self.setVisible(False)

    def show_invite(self, title: str, link: str, hint: str = "") -> None:
        self.title_label.setText(title)
        self.link_edit.setText(link)
        self.link_edit.setVisible(bool(link))
        self.copy_button.setVisible(bool(link))
        if link and link != self._qr_text:
            self.qr_label.setPixmap(QPixmap.fromImage(qr_image(link)))
        self._qr_text = link
        self.qr_label.setVisible(bool(link))
        self.hint_label.setText(hint)
        self.hint_label.setVisible(bool(hint))

    def _copy(self) -> None:
        self.copyClicked.emit(self.link_edit.text())
        self.copy_button.setText("Copied")
        self.copy_button.setAccessibleName("Copied the invite link")
        self._reset.start(COPIED_MS)

    def _copied_over(self) -> None:
        self.copy_button.setText("Copy link")
        self.copy_button.setAccessibleName("Copy the invite link")
