"""Things the view-models and views ask of the desktop: questions, pickers, the clipboard.

Behind a small protocol (Picard's seam) so tests replace it with a fake that
answers at once and records what it was asked. Every dialog is opened with
``open()``, never ``exec()``: no nested event loop under qasync.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QWidget

from callapp.ui.settings import Settings


class UiServices(Protocol):
    def copy_text(self, text: str) -> None:
        """Put ``text`` on the clipboard."""
        ...

    async def confirm(self, title: str, text: str, yes: str, no: str = "Cancel") -> bool:
        """Ask a yes/no question (``yes`` and ``no`` are the buttons' words); True for yes."""
        ...

    async def choose_file(self, title: str, start: str) -> str | None:
        """Ask for an existing file (starting near ``start``); None if cancelled."""
        ...

    async def choose_save_file(self, title: str, start: str) -> str | None:
        """Ask where to save a video (``start``: the suggested file); None if cancelled."""
        ...

    async def edit_preferences(
        self,
        settings: Settings,
        devices: Any,
        *,
        settings_path: str | None = None,
        in_call: bool = False,
        hosting: bool = False,
        overridden: Iterable[str] = (),
        on_volume: Callable[[int], None] | None = None,
    ) -> Settings | None:
        """Open the Preferences dialog; the new settings, or None if cancelled."""
        ...


class QtUiServices:
    """The real services: window-modal message boxes, file dialogs, the system clipboard."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self._parent = parent

    def set_parent(self, parent: QWidget) -> None:
        self._parent = parent

    def copy_text(self, text: str) -> None:
        QApplication.clipboard().setText(text)

    async def confirm(self, title: str, text: str, yes: str, no: str = "Cancel") -> bool:
        box = QMessageBox(self._parent)
        box.setObjectName("confirmBox")
        box.setWindowTitle(title)
        box.setIcon(QMessageBox.Icon.Question)
        box.setText(text)
        accept = box.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
        box.addButton(no, QMessageBox.ButtonRole.RejectRole)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def finished(_: int) -> None:
            if not answer.done():
                answer.set_result(box.clickedButton() is accept)

        box.finished.connect(finished)
        box.open()
        try:
            return await answer
        finally:
            box.deleteLater()

    async def choose_file(self, title: str, start: str) -> str | None:
        dialog = QFileDialog(self._parent, title, start)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters(["PEM files (*.pem *.crt *.cer *.key)", "All files (*)"])
        dialog.setObjectName("chooseFileDialog")
        return await _chosen_file(dialog)

    async def choose_save_file(self, title: str, start: str) -> str | None:
        dialog = QFileDialog(self._parent, title)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setNameFilters(
            ["Video (*.mp4)", "Matroska video (*.mkv)", "WebM video (*.webm)", "All files (*)"]
        )
        dialog.setDefaultSuffix("mp4")
        dialog.selectFile(start)
        dialog.setObjectName("saveFileDialog")
        return await _chosen_file(dialog)

    async def edit_preferences(
        self,
        settings: Settings,
        devices: Any,
        *,
        settings_path: str | None = None,
        in_call: bool = False,
        hosting: bool = False,
        overridden: Iterable[str] = (),
        on_volume: Callable[[int], None] | None = None,
    ) -> Settings | None:
        # Imported when first used: the dialog need not load with the window.
        module = importlib.import_module("callapp.ui.views.preferences")
        result = await module.edit_preferences(
            self._parent,
            settings,
            devices,
            settings_path=settings_path,
            in_call=in_call,
            hosting=hosting,
            overridden=overridden,
            on_volume=on_volume,
            choose_file=self.choose_file,
        )
        return result if isinstance(result, Settings) else None


async def _chosen_file(dialog: QFileDialog) -> str | None:
    """Open ``dialog`` without blocking the loop; the chosen path, or None if cancelled."""
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
