"""The window: the lobby and the call screen in one stack, the shortcuts, closing well."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent, QKeySequence, QResizeEvent
from PySide6.QtWidgets import QMainWindow, QStackedWidget, QWidget

from callapp.ui.devices import speaker_setting
from callapp.ui.logic.shortcuts import SHORTCUTS, Action
from callapp.ui.models.app import AppModel
from callapp.ui.models.call import CallOptions, Screen
from callapp.ui.settings import Settings, SettingsKeeper, SettingsStore
from callapp.ui.video_view import VideoView
from callapp.ui.views.call_screen import CallScreen
from callapp.ui.views.help_overlay import HelpOverlay
from callapp.ui.views.lobby import Lobby

log = logging.getLogger(__name__)

DEFAULT_SIZE = QSize(1024, 640)
MINIMUM_SIZE = QSize(640, 420)


class MainWindow(QMainWindow):
    """Renders the app model; the lobby and call screen forward what people do."""

    def __init__(
        self,
        app: AppModel,
        store: SettingsStore | None = None,
        settings: Settings | None = None,
        *,
        keeper: SettingsKeeper | None = None,
        allow_loopback: bool = False,
    ) -> None:
        super().__init__()
        self.app = app
        self.vm = app  # the name older callers use
        self.keeper = keeper or SettingsKeeper(store, saved=settings)
        self._allow_loopback = allow_loopback
        self._closing = False
        self._closed_cleanly = False
        self._close_task: asyncio.Future[None] | None = None
        self._preferences_task: asyncio.Future[None] | None = None
        self.setWindowTitle("callapp")
        self._set_icon()
        self.setMinimumSize(MINIMUM_SIZE)
        self.stack = QStackedWidget()
        self.stack.setObjectName("screens")
        self.lobby = Lobby()
        self.call_screen = CallScreen(app)
        self.stack.addWidget(self.lobby)
        self.stack.addWidget(self.call_screen)
        self.setCentralWidget(self.stack)
        self.help_overlay = HelpOverlay(self.stack)
        self.actions_by_name: dict[Action, QAction] = {}
        self._make_shortcuts()
        self._wire()
        self.lobby.apply_settings(self.settings)
        self.lobby.name_edit.setText(self.settings.name)
        self.lobby.attach_preview(app.devices.preview)
        self._render_screen(app.call.screen.value)

    def _set_icon(self) -> None:
        try:
            from callapp.ui.icon import app_icon  # built beside this module
        except ImportError:
            return
        self.setWindowIcon(app_icon())

    def sizeHint(self) -> QSize:
        return DEFAULT_SIZE

    @property
    def settings(self) -> Settings:
        """What this run uses (the saved settings, the flags, this run's edits)."""
        return self.keeper.current

    # -- wiring --------------------------------------------------------------------------

    def _wire(self) -> None:
        call = self.app.call
        call.screenChanged.connect(self._render_screen)
        call.messageChanged.connect(self.lobby.render_banner)
        call.noticeChanged.connect(self.lobby.render_notice)
        call.busyChanged.connect(self.lobby.render_busy)
        self.app.devices.devicesChanged.connect(self.lobby.render_devices)
        self.lobby.startClicked.connect(self._start_clicked)
        self.lobby.joinClicked.connect(self._join_clicked)
        self.lobby.preferencesClicked.connect(self.edit_preferences)
        self.lobby.refreshClicked.connect(lambda: self.app.devices.refresh())
        self.lobby.testSoundClicked.connect(
            lambda spec: self.app.sounds.play_test(speaker_setting(spec))
        )
        self.app.sounds.speakerStatusChanged.connect(self.lobby.render_speaker_status)
        self.call_screen.fullScreenRequested.connect(self.toggle_full_screen)
        self.call_screen.helpRequested.connect(self.help_overlay.toggle)
        self.call_screen.preferencesRequested.connect(self.edit_preferences)

    def _make_shortcuts(self) -> None:
        handlers = {
            Action.MUTE: self.app.call.toggle_muted,
            Action.CAMERA: self.app.call.toggle_camera,
            Action.SHARE: self.app.call.toggle_sharing,
            Action.CHAT: self.call_screen.toggle_chat,
            Action.CODE: self.call_screen.toggle_codes,
            Action.DETAILS: self.call_screen.toggle_details,
            Action.RECORD: self.app.call.toggle_recording,
            Action.FULL_SCREEN: self.toggle_full_screen,
            Action.HANG_UP: lambda: self.app.call.hang_up(),
            Action.HELP: self.help_overlay.toggle,
        }
        for row in SHORTCUTS:
            action = QAction(row.description, self)
            action.setObjectName(f"{row.action.value}Action")
            action.setShortcuts([QKeySequence(key) for key in row.keys])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(handlers[row.action])
            self.addAction(action)
            self.actions_by_name[row.action] = action

    # -- intents ---------------------------------------------------------------------------

    def _commit_settings(self) -> None:
        """The lobby's choices become this run's settings (and are saved if changed)."""
        lobby = self.lobby
        edited = self.settings.with_changes(
            video=lobby.video_combo.spec() or "camera",
            audio=lobby.mic_combo.spec() or "mic",
            speaker=lobby.speaker_combo.spec(),
            name=lobby.name_edit.text().strip(),
        )
        if edited != self.settings:
            self.keeper.edit(edited)
        self._apply_options()
        self.keeper.save()

    def _apply_options(self) -> None:
        settings = self.settings
        options = CallOptions.from_settings(
            settings, allow_loopback=self._allow_loopback, codec=self.app.options.codec
        )
        self.app.options = replace(options, name=settings.name or "Guest")

    def _start_clicked(self) -> None:
        self._commit_settings()
        self.app.call.host("")

    def _join_clicked(self, text: str) -> None:
        self._commit_settings()
        self.app.call.join_text(text)

    def edit_preferences(self) -> None:
        """Open Preferences (lobby, or the toolbar's More menu); apply and save what changed."""

        async def edit() -> None:
            call = self.app.call
            try:
                chosen = await self.app.services.edit_preferences(
                    self.settings,
                    self.app.devices.devices,
                    settings_path=self.keeper.location,
                    in_call=call.screen is Screen.CALL,
                    hosting=self.app.hosting is not None,
                    overridden=self.keeper.overrides.fields(),
                    on_volume=self._preview_volume,
                )
            except Exception as exc:
                log.warning("preferences failed: %r", exc, exc_info=True)
                call.show_message("The preferences could not be opened.")
                return
            if chosen is None:
                return
            self.keeper.edit(chosen)
            self.keeper.save()
            self.lobby.apply_settings(chosen)
            self.lobby.name_edit.setText(chosen.name)
            self.app.call.hosting.host_port = chosen.host_port
            self._apply_options()

        self._preferences_task = asyncio.ensure_future(edit())

    def _preview_volume(self, percent: int) -> None:
        self.app.call.set_volume(percent / 100)

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    # -- rendering ---------------------------------------------------------------------------

    def _render_screen(self, screen: str) -> None:
        on_call = screen == Screen.CALL.value
        self.stack.setCurrentWidget(self.call_screen if on_call else self.lobby)
        for row in SHORTCUTS:
            if row.in_call_only:
                self.actions_by_name[row.action].setEnabled(on_call)
        if on_call:
            self.call_screen.toolbar.mute_button.setFocus()
        else:
            self.call_screen.set_chat_open(False)
            self.lobby.start_button.setFocus()
            if self.isFullScreen():
                self.showNormal()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.help_overlay.isVisible():
            self.help_overlay.show_overlay()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.isFullScreen():
            self.showNormal()
            return
        super().keyPressEvent(event)

    # -- what tests and reports read -------------------------------------------------------------

    @property
    def local_view(self) -> VideoView:
        return self.call_screen.self_view

    def current_screen(self) -> QWidget | None:
        return self.stack.currentWidget()

    # -- closing -----------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        """Ask first during a call; then hang up and stop the server before going."""
        if self._closed_cleanly:
            event.accept()
            return
        event.ignore()
        if self._closing:
            return
        self._closing = True
        self._close_task = asyncio.ensure_future(self._close())

    def close_without_asking(self) -> None:
        """Close now, hanging up (the scripted ``--quit-after``)."""
        self._closing = True
        self._close_task = asyncio.ensure_future(self._close(ask=False))

    async def _close(self, *, ask: bool = True) -> None:
        call = self.app.call
        if ask and call.screen is Screen.CALL and call.others_here:
            ok = await self.app.services.confirm(
                "Leave the call?",
                "Closing the window hangs up"
                + (" and ends the call for everyone." if self.app.hosting else "."),
                "Hang up and close",
            )
            if not ok:
                self._closing = False
                return
        try:
            self._commit_settings()
        except Exception as exc:  # settings must not keep the window open
            log.warning("could not save settings: %s", exc)
        await self.app.shutdown()
        self._closed_cleanly = True
        with contextlib.suppress(RuntimeError):  # the window may be gone already (tests)
            self.close()

    @property
    def closed_cleanly(self) -> bool:
        return self._closed_cleanly
