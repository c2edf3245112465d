"""The call's toolbar: mute, camera, share screen, chat, verification code, more, hang up.

Each button says what pressing it will do ("Unmute", "Start camera") and
carries its shortcut in its tooltip and accessible description. The call
screen hides the bar when the mouse rests and shows it again on a move.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QMenu, QToolButton, QWidget

from callapp.ui.logic import wording
from callapp.ui.logic.shortcuts import Action, with_keys
from callapp.ui.views.style import BAR


def _button(name: str, text: str, tip: str, parent: QWidget) -> QToolButton:
    button = QToolButton(parent)
    button.setObjectName(name)
    button.setText(text)
    button.setAccessibleName(text)
    button.setToolTip(tip)
    button.setAccessibleDescription(tip)
    return button


class Toolbar(QFrame):
    """Forwards presses; renders muted / camera / sharing / unread / recording."""

    muteClicked = Signal()
    cameraClicked = Signal()
    shareClicked = Signal()
    chatClicked = Signal()
    codeClicked = Signal()
    hangUpClicked = Signal()
    preferencesClicked = Signal()
    fullScreenClicked = Signal()
    helpClicked = Signal()
    copyInviteClicked = Signal()
    recordClicked = Signal()
    detailsClicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("toolbar")
        self.setStyleSheet(BAR)
        self.setAccessibleName("Call controls")
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 8, 10, 8)
        row.setSpacing(8)
        self.mute_button = _button("muteButton", "Mute", "", self)
        self.camera_button = _button("cameraButton", "Stop camera", "", self)
        self.share_button = _button("shareButton", "Share screen", "", self)
        self.chat_button = _button("chatButton", "Chat", "", self)
        self.code_button = _button("codeButton", "Code", "", self)
        self.code_button.setCheckable(True)
        self.more_button = _button("moreButton", "More", "More actions", self)
        self.more_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.hang_up_button = _button("hangUpButton", "Hang up", "", self)
        self.menu = QMenu(self.more_button)
        self.menu.setObjectName("moreMenu")
        self.menu.setAccessibleName("More actions")
        self.copy_invite_action = self.menu.addAction("Copy invite link")
        self.details_action = self.menu.addAction(with_keys("Call details", Action.DETAILS))
        self.details_action.setObjectName("detailsMenuAction")
        self.record_action = self.menu.addAction("Record")
        self.record_action.setObjectName("recordMenuAction")
        self.full_screen_action = self.menu.addAction(with_keys("Full screen", Action.FULL_SCREEN))
        self.help_action = self.menu.addAction(with_keys("Keyboard shortcuts", Action.HELP))
        self.menu.addSeparator()
        self.preferences_action = self.menu.addAction("Preferences…")
        self.more_button.setMenu(self.menu)
        for button in (
            self.mute_button,
            self.camera_button,
            self.share_button,
            self.chat_button,
            self.code_button,
            self.more_button,
            self.hang_up_button,
        ):
            row.addWidget(button)
        self.mute_button.clicked.connect(self.muteClicked)
        self.camera_button.clicked.connect(self.cameraClicked)
        self.share_button.clicked.connect(self.shareClicked)
        self.chat_button.clicked.connect(self.chatClicked)
        self.code_button.clicked.connect(self.codeClicked)
        self.hang_up_button.clicked.connect(self.hangUpClicked)
        self.copy_invite_action.triggered.connect(self.copyInviteClicked)
        self.record_action.triggered.connect(self.recordClicked)
        self.details_action.triggered.connect(self.detailsClicked)
        self.full_screen_action.triggered.connect(self.fullScreenClicked)
        self.help_action.triggered.connect(self.helpClicked)
        self.preferences_action.triggered.connect(self.preferencesClicked)
        self.render_muted(False)
        self.render_camera(True)
        self.render_sharing(False)
        self.render_unread(0)
        self.render_code(False)
        self.render_recording(False)
        self._set(self.hang_up_button, "Hang up", "Leave the call", Action.HANG_UP)
        self.copy_invite_action.setVisible(False)

    def buttons(self) -> list[QToolButton]:
        return self.findChildren(QToolButton)

    def render_muted(self, muted: bool) -> None:
        tip = "Let the others hear you" if muted else "The others hear silence"
        self._set(self.mute_button, wording.mute_label(muted), tip, Action.MUTE)

    def render_camera(self, enabled: bool) -> None:
        tip = "The others see black" if enabled else "The others see you again"
        self._set(self.camera_button, wording.camera_label(enabled), tip, Action.CAMERA)

    def render_sharing(self, sharing: bool) -> None:
        tip = "Send your camera again" if sharing else "Send your screen instead of the camera"
        self._set(self.share_button, wording.share_label(sharing), tip, Action.SHARE)

    def render_unread(self, unread: int) -> None:
        tip = f"{unread} unread messages" if unread else "Messages to everyone in the call"
        self._set(self.chat_button, wording.chat_label(unread), tip, Action.CHAT)

    def render_code(self, shown: bool) -> None:
        self.code_button.setChecked(shown)
        text = "Hide code" if shown else "Show code"
        self._set(self.code_button, text, "Verification codes to read to each other", Action.CODE)

    def render_recording(self, recording: bool) -> None:
        self.record_action.setText(with_keys(wording.record_label(recording), Action.RECORD))
        self.record_action.setToolTip(
            "Finish the file and tell the others"
            if recording
            else "Save the call's video and sound to a file; the others are told"
        )

    def render_details(self, shown: bool) -> None:
        label = "Hide call details" if shown else "Call details"
        self.details_action.setText(with_keys(label, Action.DETAILS))

    def set_invite_available(self, available: bool) -> None:
        self.copy_invite_action.setVisible(available)

    def _set(self, button: QToolButton, text: str, tip: str, action: Action) -> None:
        button.setText(text)
        button.setAccessibleName(text)
        full = with_keys(tip, action)
        button.setToolTip(full)
        button.setAccessibleDescription(full)
