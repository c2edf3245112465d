"""The chat: the lines of the call, how many arrived unread, and sending one."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from callapp.call.state import CallSnapshot, ChatMessage
from callapp.ui.logic import wording
from callapp.ui.models.call import CallModel, async_slot

log = logging.getLogger(__name__)


class ChatModel(QObject):
    """Follows the call's chat tail; counts lines from others while the panel is closed."""

    linesChanged = Signal(object)  # tuple[ChatMessage, ...]
    unreadChanged = Signal(int)
    errorChanged = Signal(str)

    def __init__(self, call: CallModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._call = call
        self._lines: tuple[ChatMessage, ...] = ()
        self._unread = 0
        self._open = False
        self.error = ""
        call.snapshotChanged.connect(self._on_snapshot)

    @property
    def lines(self) -> tuple[ChatMessage, ...]:
        return self._lines

    @property
    def unread(self) -> int:
        return self._unread

    @property
    def panel_open(self) -> bool:
        return self._open

    def set_panel_open(self, shown: bool) -> None:
        """The panel is shown (its lines are read) or hidden."""
        self._open = shown
        if shown:
            self._set_unread(0)

    @async_slot(str)
    async def send(self, text: str) -> None:
        """Send ``text`` to everyone in the call; a problem is said on :attr:`errorChanged`."""
        session = self._call.session
        self._set_error("")
        if not text.strip():
            return
        if session is None:
            self._set_error("You are not in a call.")
            return
        try:
            await session.send_chat(text)
        except Exception as exc:
            self._set_error(wording.explain(exc))

    def _on_snapshot(self, snap: CallSnapshot) -> None:
        lines = snap.chat
        if lines == self._lines:
            return
        new = [line for line in lines if line not in self._lines]
        self._lines = lines
        self.linesChanged.emit(lines)
        if not lines:
            self._set_unread(0)
        elif not self._open:
            self._set_unread(self._unread + sum(1 for line in new if not line.mine))

    def _set_unread(self, count: int) -> None:
        if count != self._unread:
            self._unread = count
            self.unreadChanged.emit(count)

    def _set_error(self, text: str) -> None:
        self.error = text
        self.errorChanged.emit(text)
