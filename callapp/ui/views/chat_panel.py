"""The chat panel: slides in beside the video; lines, a field and Send."""

from __future__ import annotations

import html

from PySide6.QtCore import QEasingCurve, QPropertyAnimation, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from callapp.call.state import ChatMessage
from callapp.ui.views.style import ErrorLabel

WIDTH = 300


class ChatPanel(QFrame):
    sendRequested = Signal(str)
    closeClicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatPanel")
        self.setAccessibleName("Chat")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        column = QVBoxLayout(self)
        header = QHBoxLayout()
        title = QLabel("<b>Chat</b>")
        header.addWidget(title, 1)
        self.close_button = QPushButton("Close")
        self.close_button.setObjectName("closeChatButton")
        self.close_button.setAccessibleName("Close the chat")
        header.addWidget(self.close_button)
        column.addLayout(header)
        self.history = QTextBrowser()
        self.history.setObjectName("chatHistory")
        self.history.setAccessibleName("Chat messages")
        self.history.setOpenLinks(False)
        column.addWidget(self.history, 1)
        self.error_label = ErrorLabel()
        self.error_label.setObjectName("chatError")
        self.error_label.setVisible(False)
        column.addWidget(self.error_label)
        row = QHBoxLayout()
        self.input = QLineEdit()
        self.input.setObjectName("chatInput")
        self.input.setPlaceholderText("Message everyone")
        self.input.setAccessibleName("Message to send")
        self.input.setMaxLength(1000)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendButton")
        self.send_button.setAccessibleName("Send the message")
        row.addWidget(self.input, 1)
        row.addWidget(self.send_button)
        column.addLayout(row)
        self.send_button.clicked.connect(self._send)
        self.input.returnPressed.connect(self._send)
        self.close_button.clicked.connect(self.closeClicked)
        self._animation = QPropertyAnimation(self, b"maximumWidth", self)
        self._animation.setDuration(160)
        self._animation.setEasingCurve(QEasingCurve.Type.OutCubic)
        self.setMaximumWidth(0)
        self.setVisible(False)

    def slide(self, shown: bool) -> None:
        """Slide in (and take the focus) or out."""
        self._animation.stop()
        if shown:
            self.setVisible(True)
            self._animation.setStartValue(self.maximumWidth())
            self._animation.setEndValue(WIDTH)
            self._animation.start()
            self.input.setFocus()
        else:
            self.setMaximumWidth(0)
            self.setVisible(False)

    def render_lines(self, lines: tuple[ChatMessage, ...]) -> None:
        parts = []
        for line in lines:
            who = "You" if line.mine else line.sender_name
            parts.append(f"<p><b>{html.escape(who)}</b><br>{html.escape(line.text)}</p>")
        self.history.setHtml("".join(parts))
        bar = self.history.verticalScrollBar()
        bar.setValue(bar.maximum())

    def render_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def texts(self) -> list[str]:
        return [self.history.toPlainText(), self.error_label.text()]

    def _send(self) -> None:
        text = self.input.text()
        if text.strip():
            self.sendRequested.emit(text)
            self.input.clear()
