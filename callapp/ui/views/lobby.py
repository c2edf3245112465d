"""The lobby: your name, your devices, one big "Start a call", and one Join field."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from callapp.ui.devices import (
    DeviceScan,
    camera_choices,
    microphone_choices,
    speaker_choices,
)
from callapp.ui.logic.join_target import EXAMPLE
from callapp.ui.models.devices import PreviewService, meter_value
from callapp.ui.settings import Settings
from callapp.ui.video_view import VideoView
from callapp.ui.views.announce import announce
from callapp.ui.views.device_picker import DevicePicker
from callapp.ui.views.style import BANNER, NOTICE


class Lobby(QWidget):
    """Forwards Start, Join and Preferences; shows the banner and notices."""

    startClicked = Signal()
    joinClicked = Signal(str)
    preferencesClicked = Signal()
    refreshClicked = Signal()
    testSoundClicked = Signal(str)  # the speaker picked (its spec)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lobby")
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        card = QFrame()
        card.setObjectName("lobbyCard")
        card.setMaximumWidth(560)
        column = QVBoxLayout(card)
        column.setSpacing(12)
        title = QLabel("Video calls, straight from this computer")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        title.setFont(font)
        title.setWordWrap(True)
        column.addWidget(title)

        self.banner = QLabel()
        self.banner.setObjectName("lobbyBanner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(BANNER)
        self.banner.setAccessibleName("Message")
        self.banner.setVisible(False)
        column.addWidget(self.banner)
        self.notice = QLabel()
        self.notice.setObjectName("lobbyNotice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet(NOTICE)
        self.notice.setVisible(False)
        column.addWidget(self.notice)

        form = QFormLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("nameEdit")
        self.name_edit.setPlaceholderText("How the others see you")
        self.name_edit.setAccessibleName("Your name")
        self.name_edit.setMaxLength(64)
        form.addRow("Your name", self.name_edit)
        self.video_combo = DevicePicker(
            "videoCombo",
            "Camera",
            editable=True,
            tip="A camera, the test pattern, or a video file's path",
        )
        self.video_combo.set_choices(camera_choices(()))
        self.mic_combo = DevicePicker(
            "micCombo",
            "Microphone",
            editable=True,
            tip="A microphone, a test tone, none, or an audio file",
        )
        self.mic_combo.set_choices(microphone_choices(()))
        self.speaker_combo = DevicePicker(
            "speakerCombo", "Speaker", editable=False, tip="Where the others' voices play"
        )
        self.speaker_combo.set_choices(speaker_choices(()))
        self.refresh_button = QPushButton("Look again")
        self.refresh_button.setObjectName("refreshDevicesButton")
        self.refresh_button.setAccessibleName("Look for devices again")
        self.refresh_button.setToolTip("Look for cameras, microphones and speakers again")
        form.addRow("Camera", self.video_combo)
        form.addRow("Microphone", self.mic_combo)
        self.test_sound_button = QPushButton("Test")
        self.test_sound_button.setObjectName("testSoundButton")
        self.test_sound_button.setAccessibleName("Play a test sound")
        self.test_sound_button.setToolTip("Play a short sound on the speaker picked")
        speaker_row = QHBoxLayout()
        speaker_row.addWidget(self.speaker_combo, 1)
        speaker_row.addWidget(self.test_sound_button)
        speaker_row.addWidget(self.refresh_button)
        form.addRow("Speaker", speaker_row)
        self.speaker_status = QLabel()
        self.speaker_status.setObjectName("speakerStatus")
        self.speaker_status.setAccessibleName("Speaker")
        self.speaker_status.setWordWrap(True)
        self.speaker_status.setVisible(False)
        form.addRow("", self.speaker_status)
        column.addLayout(form)

        self.preview_view = VideoView(mirrored=True, placeholder="Starting the camera…")
        self.preview_view.setObjectName("selfPreview")
        self.preview_view.setAccessibleName("Your camera preview")
        self.preview_view.setAccessibleDescription("What the others will see of you")
        self.preview_view.setMinimumSize(240, 135)
        self.preview_view.setMaximumHeight(220)
        column.addWidget(self.preview_view, 1)
        meter_row = QHBoxLayout()
        self.mic_meter = QProgressBar()
        self.mic_meter.setObjectName("micMeter")
        self.mic_meter.setRange(0, 100)
        self.mic_meter.setValue(0)
        self.mic_meter.setTextVisible(False)
        self.mic_meter.setMaximumHeight(10)
        self.mic_meter.setAccessibleName("Microphone level")
        self.mic_meter.setAccessibleDescription("How loud the microphone hears you")
        self.mic_status = QLabel()
        self.mic_status.setObjectName("micStatus")
        self.mic_status.setAccessibleName("Microphone")
        self.mic_status.setVisible(False)
        meter_row.addWidget(QLabel("Mic level"))
        meter_row.addWidget(self.mic_meter, 1)
        meter_row.addWidget(self.mic_status)
        column.addLayout(meter_row)
        self.preview: PreviewService | None = None

        self.start_button = QPushButton("Start a call")
        self.start_button.setObjectName("startButton")
        self.start_button.setAccessibleName("Start a call")
        self.start_button.setAccessibleDescription(
            "Host a call on this computer and get a link to send to the others"
        )
        self.start_button.setDefault(True)
        self.start_button.setMinimumHeight(48)
        big = self.start_button.font()
        big.setPointSizeF(big.pointSizeF() * 1.3)
        big.setBold(True)
        self.start_button.setFont(big)
        column.addWidget(self.start_button)

        column.addWidget(QLabel("Or join a call:"))
        join_row = QHBoxLayout()
        self.join_edit = QLineEdit()
        self.join_edit.setObjectName("joinEdit")
        self.join_edit.setPlaceholderText(f"Paste the invite link, or {EXAMPLE}")
        self.join_edit.setAccessibleName("Invite link or address to join")
        self.join_edit.setAccessibleDescription(
            "An invite link, a browser link, or an address and room such as " + EXAMPLE
        )
        self.join_button = QPushButton("Join")
        self.join_button.setObjectName("joinButton")
        self.join_button.setAccessibleName("Join the call")
        join_row.addWidget(self.join_edit, 1)
        join_row.addWidget(self.join_button)
        column.addLayout(join_row)

        self.preferences_button = QPushButton("Preferences…")
        self.preferences_button.setObjectName("preferencesButton")
        self.preferences_button.setAccessibleName("Preferences")
        self.preferences_button.setAccessibleDescription(
            "Video size, network, hosting port and certificate"
        )
        column.addWidget(self.preferences_button, 0, Qt.AlignmentFlag.AlignRight)

        middle = QHBoxLayout()
        middle.addStretch(1)
        middle.addWidget(card, 3)
        middle.addStretch(1)
        outer.addLayout(middle)
        outer.addStretch(1)

        self.start_button.clicked.connect(self._start)
        self.join_button.clicked.connect(self._join)
        self.join_edit.returnPressed.connect(self._join)
        self.preferences_button.clicked.connect(self.preferencesClicked)
        self.refresh_button.clicked.connect(self.refreshClicked)
        self.test_sound_button.clicked.connect(
            lambda: self.testSoundClicked.emit(self.speaker_combo.spec())
        )
        self.speaker_combo.currentTextChanged.connect(lambda _text: self.render_speaker_status(""))

    def _join(self) -> None:
        if self.join_button.isEnabled():
            self.stop_preview()  # the call gets the camera
            self.joinClicked.emit(self.join_edit.text())

    def _start(self) -> None:
        self.stop_preview()
        self.startClicked.emit()

    # -- the self-preview and the level meter ----------------------------------------------

    def attach_preview(self, preview: PreviewService) -> None:
        """Show ``preview``'s frames and level while the lobby is on screen."""
        self.preview = preview
        preview.frameReady.connect(self.preview_view.show_frame)
        preview.levelChanged.connect(self.render_level)
        preview.micStatusChanged.connect(self.render_mic_status)
        preview.videoStatusChanged.connect(self._render_video_status)
        self.video_combo.currentTextChanged.connect(self._devices_picked)
        self.mic_combo.currentTextChanged.connect(self._devices_picked)
        if self.isVisible():
            self.start_preview()

    def start_preview(self) -> None:
        if self.preview is not None and self.isVisible():
            self.preview.start(self.video_combo.spec(), self.mic_combo.spec())

    def stop_preview(self) -> None:
        if self.preview is not None:
            self.preview.stop()
            self.preview_view.clear()
            self.preview_view.set_placeholder("Starting the camera…")

    def _devices_picked(self, _text: str = "") -> None:
        if self.preview is not None and self.preview.running:
            self.start_preview()

    def render_level(self, dbfs: float) -> None:
        self.mic_meter.setValue(meter_value(dbfs))

    def render_mic_status(self, words: str) -> None:
        self.mic_status.setText(words)
        self.mic_status.setVisible(bool(words))
        self.mic_meter.setAccessibleDescription(words or "How loud the microphone hears you")

    def render_speaker_status(self, words: str) -> None:
        self.speaker_status.setText(words)
        self.speaker_status.setVisible(bool(words))
        if words:
            announce(self.speaker_status, words)

    def _render_video_status(self, words: str) -> None:
        if words:
            self.preview_view.clear()
            self.preview_view.set_placeholder(words)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.start_preview()

    def hideEvent(self, event: QHideEvent) -> None:
        self.stop_preview()
        if self.preview is not None:
            self.preview.held = False  # back in the lobby later, the preview runs
        super().hideEvent(event)

    def apply_settings(self, settings: Settings) -> None:
        self.video_combo.set_spec(settings.video)
        self.mic_combo.set_spec(settings.audio)
        self.speaker_combo.set_spec(settings.speaker)

    def render_devices(self, scan: DeviceScan) -> None:
        self.video_combo.set_choices(camera_choices(scan.cameras))
        self.mic_combo.set_choices(microphone_choices(scan.microphones))
        self.speaker_combo.set_choices(speaker_choices(scan.speakers))

    def render_banner(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.setVisible(bool(text))
        announce(self.banner, text, urgent=True)

    def render_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def render_busy(self, busy: bool) -> None:
        self.start_button.setEnabled(not busy)
        self.join_button.setEnabled(not busy)

    def texts(self) -> list[str]:
        found = [self.banner.text(), self.notice.text()]
        found += [b.text() for b in self.findChildren(QPushButton)]
        found += [label.text() for label in self.findChildren(QLabel)]
        return [text for text in found if text]
