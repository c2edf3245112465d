"""The main window: widgets that render the view-model and forward clicks to it.

No call logic lives here; everything a test wants to check about behaviour is
in :mod:`callapp.ui.viewmodel` and the pure modules beside it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QCloseEvent, QIcon, QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from callapp.call.state import CallSnapshot
from callapp.ui.address import invite_hint
from callapp.ui.controls import Controls
from callapp.ui.devices import (
    Choice,
    DeviceScan,
    camera_choices,
    microphone_choices,
    speaker_choices,
    spec_for,
)
from callapp.ui.settings import RESOLUTIONS, Settings, SettingsStore, parse_ice_servers
from callapp.ui.status import audio_state_text, mute_button_text, notice_text, placeholder_text
from callapp.ui.video_view import VideoView
from callapp.ui.viewmodel import CallOptions, CallViewModel, Hosting

log = logging.getLogger(__name__)

ICON = Path(__file__).resolve().parents[2] / "resources" / "callapp.svg"

ERROR_STYLE = (
    "QLabel { background: #fbe3e4; color: #8a1f11; border: 1px solid #e4a1a1;"
    " border-radius: 4px; padding: 6px; }"
)
NOTICE_STYLE = (
    "QLabel { background: #fff4d6; color: #6b4e00; border: 1px solid #e8cf87;"
    " border-radius: 4px; padding: 6px; }"
)


class RemoteVideoArea(VideoView):
    """The remote picture, with the mirrored self-view pinned to a corner."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, placeholder="No call")
        self.setObjectName("remoteView")
        self.self_view = VideoView(self, mirrored=True, placeholder="Camera off")
        self.self_view.setObjectName("localView")
        self.self_view.setMinimumSize(80, 60)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        w = max(120, self.width() // 4)
        h = w * 3 // 4
        margin = 12
        self.self_view.setGeometry(self.width() - w - margin, self.height() - h - margin, w, h)


def _copy_row(edit: QWidget, button: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return row


class SpecPicker(QComboBox):
    """A device picker: labelled choices, each standing for a spec.

    Editable pickers also take a typed spec (a file's path, ``camera:2``,
    ``tone:880``); a saved spec the system no longer lists is kept and shown.
    """

    def __init__(self, name: str, *, editable: bool, tip: str) -> None:
        super().__init__()
        self.setObjectName(name)
        self.setEditable(editable)
        self.setToolTip(tip)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self.choices: tuple[Choice, ...] = ()

    def set_choices(self, choices: tuple[Choice, ...]) -> None:
        """Offer ``choices``, keeping what is picked now."""
        current = self.spec() if self.count() or self.isEditable() else None
        self.choices = choices
        self.blockSignals(True)
        try:
            self.clear()
            for choice in choices:
                self.addItem(choice.label, choice.spec)
        finally:
            self.blockSignals(False)
        if current is not None:
            self.set_spec(current)

    def spec(self) -> str:
        if self.isEditable():
            return spec_for(self.currentText(), self.choices)
        data = self.currentData()
        return str(data) if data is not None else ""

    def specs(self) -> list[str]:
        return [str(self.itemData(i)) for i in range(self.count())]

    def set_spec(self, spec: str) -> None:
        index = self.findData(spec)
        if index < 0 and not self.isEditable():
            self.addItem(f"{spec} (not found)", spec)
            index = self.count() - 1
        if index >= 0:
            self.setCurrentIndex(index)
        else:
            self.setEditText(spec)


class MainWindow(QMainWindow):
    """Host or join a call; every widget renders the view-model or calls it."""

    def __init__(
        self,
        vm: CallViewModel,
        store: SettingsStore | None = None,
        settings: Settings | None = None,
        *,
        allow_loopback: bool = False,
    ) -> None:
        super().__init__()
        self.vm = vm
        self.store = store
        self.settings = settings or (store.load() if store is not None else Settings())
        self._allow_loopback = allow_loopback
        self._closing = False
        self._closed_cleanly = False
        self.setWindowTitle("callapp")
        if ICON.exists():
            self.setWindowIcon(QIcon(str(ICON)))
        self._build()
        self._wire()
        self._apply_settings(self.settings)
        self._render_controls(vm.controls)
        self._render_snapshot(vm.snapshot)
        self._render_muted(vm.muted)
        if vm.devices is not None:
            self._render_devices(vm.devices)

    # -- construction ------------------------------------------------------------

    def _build(self) -> None:
        self.video = RemoteVideoArea()
        self.remote_view: VideoView = self.video
        self.local_view: VideoView = self.video.self_view

        self.error_label = QLabel()
        self.error_label.setObjectName("errorLabel")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setVisible(False)
        self.notice_label = QLabel()
        self.notice_label.setObjectName("noticeLabel")
        self.notice_label.setWordWrap(True)
        self.notice_label.setStyleSheet(NOTICE_STYLE)
        self.notice_label.setVisible(False)

        self.status_label = QLabel()
        self.status_label.setObjectName("statusLabel")
        self.status_label.setWordWrap(True)
        font = self.status_label.font()
        font.setBold(True)
        self.status_label.setFont(font)
        self.duration_label = QLabel()
        self.duration_label.setObjectName("durationLabel")
        self.stats_label = QLabel()
        self.stats_label.setObjectName("statsLabel")
        self.stats_label.setStyleSheet("color: #555;")

        # Connection
        self.server_edit = QLineEdit()
        self.server_edit.setObjectName("serverEdit")
        self.server_edit.setPlaceholderText("ws://192.168.1.20:8765/ws")
        self.room_edit = QLineEdit()
        self.room_edit.setObjectName("roomEdit")
        self.room_edit.setPlaceholderText("a room name, or empty")
        self.host_button = QPushButton("Host")
        self.host_button.setObjectName("hostButton")
        self.host_button.setToolTip("Start a server in this app and wait in a new room")
        self.join_button = QPushButton("Join")
        self.join_button.setObjectName("joinButton")
        self.join_button.setToolTip("Join the room on the server (empty room: wait for a call)")
        self.id_edit = QLineEdit()
        self.id_edit.setObjectName("connectionIdEdit")
        self.id_edit.setReadOnly(True)
        self.id_edit.setPlaceholderText("not connected")
        self.copy_id_button = QPushButton("Copy")
        self.copy_id_button.setObjectName("copyIdButton")
        self.peer_edit = QLineEdit()
        self.peer_edit.setObjectName("peerEdit")
        self.peer_edit.setPlaceholderText("the other person's connection id")
        self.call_button = QPushButton("Call")
        self.call_button.setObjectName("callButton")

        connection = QGroupBox("Connection")
        form = QFormLayout(connection)
        form.addRow("Server", self.server_edit)
        form.addRow("Room", self.room_edit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.host_button)
        buttons.addWidget(self.join_button)
        form.addRow(buttons)
        form.addRow("Your id", _copy_row(self.id_edit, self.copy_id_button))
        form.addRow("Call id", _copy_row(self.peer_edit, self.call_button))

        # What to share while hosting
        self.share_url_edit = QLineEdit()
        self.share_url_edit.setObjectName("shareUrlEdit")
        self.share_url_edit.setReadOnly(True)
        self.copy_url_button = QPushButton("Copy")
        self.copy_url_button.setObjectName("copyUrlButton")
        self.share_room_edit = QLineEdit()
        self.share_room_edit.setObjectName("shareRoomEdit")
        self.share_room_edit.setReadOnly(True)
        self.copy_room_button = QPushButton("Copy")
        self.copy_room_button.setObjectName("copyRoomButton")
        self.share_box = QGroupBox("Give the other person")
        self.share_box.setObjectName("shareBox")
        share_form = QFormLayout(self.share_box)
        self.invite_edit = QLineEdit()
        self.invite_edit.setObjectName("inviteEdit")
        self.invite_edit.setReadOnly(True)
        self.invite_edit.setToolTip("Opens the call in a web browser")
        self.copy_invite_button = QPushButton("Copy")
        self.copy_invite_button.setObjectName("copyInviteButton")
        self.invite_hint_label = QLabel()
        self.invite_hint_label.setObjectName("inviteHintLabel")
        self.invite_hint_label.setWordWrap(True)
        self.invite_hint_label.setStyleSheet("color: #555; font-size: 11px;")
        share_form.addRow("Address", _copy_row(self.share_url_edit, self.copy_url_button))
        share_form.addRow("Room", _copy_row(self.share_room_edit, self.copy_room_button))
        share_form.addRow("Browser", _copy_row(self.invite_edit, self.copy_invite_button))
        share_form.addRow(self.invite_hint_label)
        self.share_box.setVisible(False)

        # Host settings: TLS for wss:// and https:// (a browser camera needs https)
        self.cert_edit = QLineEdit()
        self.cert_edit.setObjectName("certEdit")
        self.cert_edit.setPlaceholderText("certificate .pem (optional: https)")
        self.cert_button = QPushButton("…")
        self.cert_button.setMaximumWidth(36)
        self.cert_button.setObjectName("certBrowseButton")
        self.cert_button.setToolTip("Choose the certificate file")
        self.key_edit = QLineEdit()
        self.key_edit.setObjectName("keyEdit")
        self.key_edit.setPlaceholderText("private key .pem (if not in the certificate)")
        self.key_button = QPushButton("…")
        self.key_button.setMaximumWidth(36)
        self.key_button.setObjectName("keyBrowseButton")
        self.key_button.setToolTip("Choose the private key file")
        host_box = QGroupBox("Host settings")
        host_box.setObjectName("hostSettingsBox")
        host_form = QFormLayout(host_box)
        host_form.addRow("Certificate", _copy_row(self.cert_edit, self.cert_button))
        host_form.addRow("Key", _copy_row(self.key_edit, self.key_button))

        # Call controls
        self.hang_up_button = QPushButton("Hang up")
        self.hang_up_button.setObjectName("hangUpButton")
        self.hang_up_button.setStyleSheet("QPushButton:enabled { color: #a11; }")
        self.camera_button = QPushButton("Camera on")
        self.camera_button.setObjectName("cameraButton")
        self.camera_button.setCheckable(True)
        self.camera_button.setChecked(True)
        self.mute_button = QPushButton(mute_button_text(False))
        self.mute_button.setObjectName("muteButton")
        self.mute_button.setCheckable(True)
        self.mute_button.setToolTip("Mute the microphone: the other person hears silence")
        call_row = QHBoxLayout()
        call_row.addWidget(self.hang_up_button)
        call_row.addWidget(self.camera_button)
        call_row.addWidget(self.mute_button)
        self.volume_slider = QSlider(Qt.Orientation.Horizontal)
        self.volume_slider.setObjectName("volumeSlider")
        self.volume_slider.setRange(0, 200)
        self.volume_slider.setValue(100)
        self.volume_slider.setPageStep(10)
        self.volume_slider.setToolTip("Speaker volume")
        self.volume_label = QLabel("100%")
        self.volume_label.setObjectName("volumeLabel")
        self.volume_label.setMinimumWidth(40)
        volume_row = QHBoxLayout()
        volume_row.addWidget(QLabel("Volume"))
        volume_row.addWidget(self.volume_slider, 1)
        volume_row.addWidget(self.volume_label)
        self.muted_label = QLabel()
        self.muted_label.setObjectName("mutedLabel")
        self.muted_label.setStyleSheet("color: #a11;")
        self.muted_label.setVisible(False)

        # Media and network settings
        self.video_combo = SpecPicker(
            "videoCombo", editable=True, tip="A camera, the test pattern, or a video file's path"
        )
        self.video_combo.set_choices(camera_choices(()))
        self.mic_combo = SpecPicker(
            "micCombo",
            editable=True,
            tip="A microphone, a test tone, none, or an audio file",
        )
        self.mic_combo.set_choices(microphone_choices(()))
        self.speaker_combo = SpecPicker(
            "speakerCombo", editable=False, tip="Where the other person's audio plays"
        )
        self.speaker_combo.set_choices(speaker_choices(()))
        self.refresh_devices_button = QPushButton("Refresh")
        self.refresh_devices_button.setObjectName("refreshDevicesButton")
        self.refresh_devices_button.setToolTip("Look for cameras, microphones and speakers again")
        self.resolution_combo = QComboBox()
        self.resolution_combo.setObjectName("resolutionCombo")
        for w, h in RESOLUTIONS:
            self.resolution_combo.addItem(f"{w}×{h}", f"{w}x{h}")
        self.ice_edit = QLineEdit()
        self.ice_edit.setObjectName("iceEdit")
        self.ice_edit.setPlaceholderText("stun:stun.example.org:3478 (optional)")
        media = QGroupBox("Media and network")
        media_form = QFormLayout(media)
        media_form.addRow("Camera", self.video_combo)
        media_form.addRow("Microphone", self.mic_combo)
        media_form.addRow("Speaker", _copy_row(self.speaker_combo, self.refresh_devices_button))
        media_form.addRow("Size", self.resolution_combo)
        media_form.addRow("ICE servers", self.ice_edit)

        side = QWidget()
        side.setMinimumWidth(330)
        side.setMaximumWidth(420)
        side.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        column = QVBoxLayout(side)
        column.addWidget(self.status_label)
        timing = QHBoxLayout()
        timing.addWidget(self.duration_label)
        timing.addStretch(1)
        column.addLayout(timing)
        column.addWidget(self.stats_label)
        column.addWidget(self.muted_label)
        column.addWidget(self.error_label)
        column.addWidget(self.notice_label)
        column.addLayout(call_row)
        column.addLayout(volume_row)
        column.addWidget(connection)
        column.addWidget(self.share_box)
        column.addWidget(media)
        column.addWidget(host_box)
        column.addStretch(1)

        central = QWidget()
        layout = QHBoxLayout(central)
        layout.addWidget(self.video, 1)
        layout.addWidget(side)
        self.setCentralWidget(central)

    def sizeHint(self) -> QSize:
        return QSize(1100, 620)

    def _wire(self) -> None:
        vm = self.vm
        vm.statusChanged.connect(self.status_label.setText)
        vm.durationChanged.connect(self.duration_label.setText)
        vm.statsChanged.connect(self.stats_label.setText)
        vm.errorChanged.connect(self._render_error)
        vm.noticeChanged.connect(self._render_notice)
        vm.connectionIdChanged.connect(self.id_edit.setText)
        vm.hostingChanged.connect(self._render_hosting)
        vm.controlsChanged.connect(self._render_controls)
        vm.snapshotChanged.connect(self._render_snapshot)
        vm.remoteActiveChanged.connect(self._render_remote_active)
        vm.remoteFrame.connect(self.remote_view.show_frame)
        vm.localFrame.connect(self.local_view.show_frame)
        vm.mutedChanged.connect(self._render_muted)
        vm.devicesChanged.connect(self._render_devices)

        self.host_button.clicked.connect(self._host_clicked)
        self.join_button.clicked.connect(self._join_clicked)
        self.call_button.clicked.connect(self._call_clicked)
        self.peer_edit.returnPressed.connect(self._call_clicked)
        self.room_edit.returnPressed.connect(self._join_clicked)
        self.hang_up_button.clicked.connect(lambda: vm.hang_up())
        self.camera_button.toggled.connect(self._camera_toggled)
        self.mute_button.clicked.connect(lambda on: vm.set_muted(on))
        self.volume_slider.valueChanged.connect(self._volume_changed)
        self.refresh_devices_button.clicked.connect(lambda: vm.refresh_devices())
        self.copy_id_button.clicked.connect(lambda: vm.copy(self.id_edit.text()))
        self.copy_url_button.clicked.connect(lambda: vm.copy(self.share_url_edit.text()))
        self.copy_room_button.clicked.connect(lambda: vm.copy(self.share_room_edit.text()))
        self.copy_invite_button.clicked.connect(lambda: vm.copy(self.invite_edit.text()))
        self.cert_button.clicked.connect(
            lambda: self._browse(self.cert_edit, "Choose the TLS certificate")
        )
        self.key_button.clicked.connect(
            lambda: self._browse(self.key_edit, "Choose the TLS private key")
        )

    # -- settings ----------------------------------------------------------------

    def _apply_settings(self, settings: Settings) -> None:
        self.server_edit.setText(settings.server_url)
        self.room_edit.setText(settings.room)
        self.video_combo.set_spec(settings.video)
        self.mic_combo.set_spec(settings.audio)
        self.speaker_combo.set_spec(settings.speaker)
        self.volume_slider.blockSignals(True)  # the options already carry it
        self.volume_slider.setValue(settings.volume)
        self.volume_slider.blockSignals(False)
        self.volume_label.setText(f"{settings.volume}%")
        key = f"{settings.width}x{settings.height}"
        index = self.resolution_combo.findData(key)
        if index < 0:
            self.resolution_combo.addItem(f"{settings.width}×{settings.height}", key)
            index = self.resolution_combo.count() - 1
        self.resolution_combo.setCurrentIndex(index)
        self.ice_edit.setText(" ".join(settings.ice_servers))
        self.cert_edit.setText(settings.cert_file)
        self.key_edit.setText(settings.key_file)

    def current_settings(self) -> Settings:
        """The settings as the fields show them now."""
        width, _, height = str(self.resolution_combo.currentData() or "640x480").partition("x")
        resolution = (int(width), int(height))
        server = self.server_edit.text().strip()
        if self.vm.hosting is not None:
            server = self.settings.server_url  # the share address is not a preference
        return self.settings.with_changes(
            server_url=server,
            room=self.room_edit.text().strip(),
            video=self.video_combo.spec() or "camera",
            audio=self.mic_combo.spec() or "mic",
            speaker=self.speaker_combo.spec(),
            volume=self.volume_slider.value(),
            resolution=resolution,
            ice_servers=parse_ice_servers(self.ice_edit.text()),
            cert_file=self.cert_edit.text().strip(),
            key_file=self.key_edit.text().strip(),
        )

    def _commit_settings(self) -> None:
        self.settings = self.current_settings()
        self.vm.options = CallOptions.from_settings(
            self.settings, allow_loopback=self._allow_loopback, codec=self.vm.options.codec
        )
        if self.store is not None:
            self.store.save(self.settings)

    # -- user intents ------------------------------------------------------------

    def _host_clicked(self) -> None:
        if self.vm.hosting is not None:
            self.vm.stop_hosting()
            return
        self._commit_settings()
        self.vm.host(self.room_edit.text())

    def _join_clicked(self) -> None:
        if not self.join_button.isEnabled():
            return
        self._commit_settings()
        self.vm.join(self.server_edit.text(), self.room_edit.text())

    def _call_clicked(self) -> None:
        if not self.call_button.isEnabled():
            return
        self._commit_settings()
        self.vm.call(self.server_edit.text(), self.peer_edit.text())

    def _browse(self, edit: QLineEdit, title: str) -> None:
        def chosen(task: asyncio.Future[str | None]) -> None:
            if not task.cancelled() and task.exception() is None and task.result():
                edit.setText(task.result() or "")

        asyncio.ensure_future(self.vm.services.choose_file(title, edit.text())).add_done_callback(
            chosen
        )

    def _camera_toggled(self, on: bool) -> None:
        self.camera_button.setText("Camera on" if on else "Camera off")
        if not on:
            self.local_view.clear()
        self.vm.set_video_enabled(on)

    def _volume_changed(self, percent: int) -> None:
        self.volume_label.setText(f"{percent}%")
        self.vm.set_volume(percent / 100)
        self.settings = self.settings.with_changes(volume=percent)
        if self.store is not None:
            self.store.save(self.settings)

    # -- rendering ---------------------------------------------------------------

    def _render_muted(self, muted: bool) -> None:
        self.mute_button.setChecked(muted)
        self.mute_button.setText(mute_button_text(muted))
        self.muted_label.setText(audio_state_text(muted))
        self.muted_label.setVisible(muted)

    def _render_devices(self, scan: DeviceScan) -> None:
        self.video_combo.set_choices(camera_choices(scan.cameras))
        self.mic_combo.set_choices(microphone_choices(scan.microphones))
        self.speaker_combo.set_choices(speaker_choices(scan.speakers))

    def _render_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def _render_notice(self, message: str) -> None:
        self.notice_label.setText(notice_text(message))
        self.notice_label.setVisible(bool(message))

    def _render_hosting(self, hosting: Hosting | None) -> None:
        self.share_box.setVisible(hosting is not None)
        self.host_button.setText("Stop hosting" if hosting is not None else "Host")
        if hosting is None:
            self.share_url_edit.clear()
            self.share_room_edit.clear()
            self.invite_edit.clear()
            self.invite_hint_label.clear()
            self.server_edit.setText(self.settings.server_url)  # not the stopped server
            return
        self.share_url_edit.setText(hosting.share_url)
        self.share_room_edit.setText(hosting.room)
        self.invite_edit.setText(hosting.invite_url)
        self.invite_hint_label.setText(invite_hint(hosting.tls))
        self.room_edit.setText(hosting.room)
        self.server_edit.setText(hosting.share_url)

    def _render_controls(self, controls: Controls) -> None:
        hosting = self.vm.hosting is not None
        self.host_button.setEnabled(controls.host or (hosting and not self.vm.busy))
        self.join_button.setEnabled(controls.join)
        self.call_button.setEnabled(controls.call)
        self.hang_up_button.setEnabled(controls.hang_up)
        self.camera_button.setEnabled(controls.camera)
        self.server_edit.setReadOnly(not controls.edit_server)
        self.room_edit.setReadOnly(not controls.edit_room)

    def _render_snapshot(self, snap: CallSnapshot) -> None:
        self.remote_view.set_placeholder(placeholder_text(snap))

    def _render_remote_active(self, active: bool) -> None:
        if not active:
            self.remote_view.clear()

    # -- closing -----------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        """Hang up and stop the server before the window really goes."""
        if self._closed_cleanly:
            event.accept()
            return
        event.ignore()
        if self._closing:
            return
        self._closing = True
        try:
            self._commit_settings()
        except Exception as exc:  # settings must not keep the window open
            log.warning("could not save settings: %s", exc)
        task = self.vm.shutdown()
        task.add_done_callback(lambda _: self._finish_close())

    def _finish_close(self) -> None:
        self._closed_cleanly = True
        self.close()

    @property
    def closed_cleanly(self) -> bool:
        return self._closed_cleanly
