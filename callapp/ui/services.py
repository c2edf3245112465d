"""Things the view-model asks of the desktop: prompts, a file picker and the clipboard.

Behind a small protocol (Picard's seam) so tests replace it with a fake that
answers at once and records what it was asked.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QWidget

from callapp.ui.status import short_id


class UiServices(Protocol):
    async def ask_accept_call(self, peer_id: str) -> bool:
        """Ask whether to take an incoming call; True to accept."""
        ...

    def dismiss_call_prompt(self) -> None:
        """Close the incoming-call prompt (the caller gave up)."""
        ...

    def copy_text(self, text: str) -> None:
        """Put ``text`` on the clipboard."""
        ...

    async def choose_file(self, title: str, start: str) -> str | None:
        """Ask for an existing file (starting near ``start``); None if cancelled."""
        ...


class QtUiServices:
    """The real services: a non-modal Accept/Decline box and the system clipboard."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self._parent = parent
        self._box: QMessageBox | None = None

    def set_parent(self, parent: QWidget) -> None:
        self._parent = parent

    async def ask_accept_call(self, peer_id: str) -> bool:
        self.dismiss_call_prompt()
        box = QMessageBox(self._parent)
        box.setWindowTitle("Incoming call")
        box.setIcon(QMessageBox.Icon.Question)
        box.setText(f"{short_id(peer_id)} is calling you.")
        accept = box.addButton("Accept", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Decline", QMessageBox.ButtonRole.RejectRole)
        box.setObjectName("incomingCallBox")
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def finished(_: int) -> None:
            if not answer.done():
                answer.set_result(box.clickedButton() is accept)

        box.finished.connect(finished)
        self._box = box
        box.open()
        try:
            return await answer
        finally:
            if self._box is box:
                self._box = None
            box.deleteLater()

    def dismiss_call_prompt(self) -> None:
        if self._box is not None:
            self._box.done(0)
            self._box = None

    def copy_text(self, text: str) -> None:
        clipboard = QApplication.clipboard()
        clipboard.setText(text)

    async def choose_file(self, title: str, start: str) -> str | None:
        # Window-modal but opened with open(), not exec(): no nested event loop
        # under qasync.
        dialog = QFileDialog(self._parent, title, start)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters(["PEM files (*.pem *.crt *.cer *.key)", "All files (*)"])
        dialog.setObjectName("chooseFileDialog")
        answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        def finished(result: int) -> None:
            if answer.done():
                return
            files = dialog.selectedFiles()
            accepted = result == int(QFileDialog.DialogCode.Accepted)
            answer.set_result(files[0] if accepted and files else None)

        dialog.finished.connect(finished)
        dialog.open()
        try:
            return await answer
        finally:
            dialog.deleteLater()
