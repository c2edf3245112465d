"""An incoming call: the caller's name, Accept and Decline (the ring is SoundsModel's)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from callapp.ui.views.announce import announce
from callapp.ui.views.style import ACCEPT_BUTTON, DECLINE_BUTTON, OVERLAY


class RingingPanel(QFrame):
    acceptClicked = Signal()
    declineClicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ringingPanel")
        # Opaque, unlike the other overlays: the stage's own words sit behind it.
        self.setStyleSheet(
            f"QFrame#ringingPanel {{ {OVERLAY} background: rgb(32, 34, 40); }}"
            " QLabel { color: white; }"
        )
        self.setAccessibleName("Incoming call")
        column = QVBoxLayout(self)
        column.setContentsMargins(20, 16, 20, 16)
        self.caller_label = QLabel()
        self.caller_label.setObjectName("callerLabel")
        self.caller_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.caller_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.caller_label.setFont(font)
        column.addWidget(self.caller_label)
        row = QHBoxLayout()
        self.accept_button = QPushButton("Accept")
        self.accept_button.setObjectName("acceptButton")
        self.accept_button.setStyleSheet(ACCEPT_BUTTON)
        self.decline_button = QPushButton("Decline")
        self.decline_button.setObjectName("declineButton")
        self.decline_button.setStyleSheet(DECLINE_BUTTON)
        for button in (self.accept_button, self.decline_button):
            row.addWidget(button)
        column.addLayout(row)
        self.accept_button.clicked.connect(self.acceptClicked)
        self.decline_button.clicked.connect(self.declineClicked)
        self.setVisible(False)

    def show_caller(self, caller: str) -> None:
        """Show the panel for ``caller``; hide it for ""."""
        if caller:
            self.caller_label.setText(f"{caller} is calling you")
            self.accept_button.setAccessibleName(f"Accept the call from {caller}")
            self.decline_button.setAccessibleName(f"Decline the call from {caller}")
            announce(self, f"{caller} is calling you", urgent=True)
            self.setVisible(True)
            self.raise_()
            self.accept_button.setFocus()
        else:
            self.setVisible(False)
