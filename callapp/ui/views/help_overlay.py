"""The keyboard-shortcut list (``?`` or F1), drawn from the one shortcut table."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QPushButton, QWidget

from callapp.ui.logic.shortcuts import help_rows
from callapp.ui.views.style import OVERLAY


class HelpOverlay(QFrame):
    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("helpOverlay")
        self.setAccessibleName("Keyboard shortcuts")
        self.setStyleSheet(f"QFrame#helpOverlay {{ {OVERLAY} }} QLabel {{ color: white; }}")
        grid = QGridLayout(self)
        grid.setContentsMargins(24, 20, 24, 20)
        title = QLabel("<b>Keyboard shortcuts</b>")
        grid.addWidget(title, 0, 0, 1, 2)
        self.rows: list[tuple[str, str]] = help_rows()
        for index, (keys, description) in enumerate(self.rows, start=1):
            key_label = QLabel(f"<b>{keys}</b>")
            grid.addWidget(key_label, index, 0)
            grid.addWidget(QLabel(description), index, 1)
        self.close_button = QPushButton("Close")
        self.close_button.setObjectName("closeHelpButton")
        self.close_button.setAccessibleName("Close the list of shortcuts")
        grid.addWidget(self.close_button, len(self.rows) + 1, 1, Qt.AlignmentFlag.AlignRight)
        self.close_button.clicked.connect(self.hide_overlay)
        self.setVisible(False)

    def toggle(self) -> None:
        if self.isVisible():
            self.hide_overlay()
        else:
            self.show_overlay()

    def show_overlay(self) -> None:
        parent = self.parentWidget()
        self.adjustSize()
        if parent is not None:
            self.move((parent.width() - self.width()) // 2, (parent.height() - self.height()) // 2)
        self.setVisible(True)
        self.raise_()
        self.close_button.setFocus()

    def hide_overlay(self) -> None:
        if self.isVisible():
            self.setVisible(False)
            self.closed.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.hide_overlay()
            return
        super().keyPressEvent(event)
