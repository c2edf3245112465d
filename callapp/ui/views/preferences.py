"""The Preferences dialog: devices, video size, ICE servers, hosting, your name.

It renders a :class:`~callapp.ui.logic.preferences.PreferencesForm` and reads
it back; the checks, the wording and what a change does live in
:mod:`callapp.ui.logic.preferences`. :func:`edit_preferences` shows the dialog
without a nested event loop (``open()``, then awaiting ``finished``) and
returns the new settings, or None when cancelled. Saving them is the
caller's (``SettingsKeeper.edit`` then ``save``), so command-line flags never
reach the settings file.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from callapp.ui.devices import (
    DeviceScan,
    camera_choices,
    microphone_choices,
    speaker_choices,
)
from callapp.ui.logic.preferences import (
    DEFAULT_NAME,
    ICE_EXAMPLE,
    PreferencesForm,
    change_notes,
    form_problems,
    location_text,
    overridden_text,
    settings_from_form,
    size_choices,
    volume_text,
)
from callapp.ui.settings import DEFAULT_HOST_PORT, MAX_NAME_LENGTH, Settings
from callapp.ui.views.device_picker import DevicePicker
from callapp.ui.views.style import ErrorLabel

log = logging.getLogger(__name__)

#: ``(title, start) -> chosen path or None``: the file picker (``UiServices.choose_file``).
FileChooser = Callable[[str, str], Awaitable[str | None]]


def _describe(widget: QWidget, name: str, description: str) -> None:
    widget.setAccessibleName(name)
    widget.setAccessibleDescription(description)
    widget.setToolTip(description)


def _row(*widgets: QWidget) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    for i, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if i == 0 else 0)
    return row


def _hint(text: str, name: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    label.setAccessibleName(text)
    return label


class PreferencesDialog(QDialog):
    """Everything that is not the call itself; Save is off while a field has a problem."""

    #: The volume slider moved (percent): the caller may apply it to a call at once.
    volumeChanged = Signal(int)

    def __init__(
        self,
        settings: Settings,
        devices: DeviceScan | None = None,
        *,
        settings_path: str | None = None,
        parent: QWidget | None = None,
        in_call: bool = False,
        hosting: bool = False,
        overridden: Iterable[str] = (),
        choose_file: FileChooser | None = None,
        file_exists: Callable[[str], bool] = os.path.isfile,
    ) -> None:
        super().__init__(parent)
        self._initial = settings
        self._in_call = in_call
        self._hosting = hosting
        self._file_exists = file_exists
        self._choose_file = choose_file
        self._problems: dict[str, str] = {}
        self._pickers: set[asyncio.Future[None]] = set()
        self.setObjectName("preferencesDialog")
        self.setWindowTitle("Preferences")
        self.setAccessibleName("Preferences")
        self.setAccessibleDescription(
            "Devices, video size, ICE servers, hosting and your name; Save keeps them."
        )
        self.setMinimumWidth(520)
        self._build(settings, devices, settings_path, overridden)
        self._wire()
        self._refresh()

    # -- construction ------------------------------------------------------------

    def _build(
        self,
        settings: Settings,
        devices: DeviceScan | None,
        settings_path: str | None,
        overridden: Iterable[str],
    ) -> None:
        scan = devices or DeviceScan()

        # You
        self.name_edit = QLineEdit(settings.name)
        self.name_edit.setObjectName("nameEdit")
        self.name_edit.setMaxLength(MAX_NAME_LENGTH)
        self.name_edit.setPlaceholderText(DEFAULT_NAME)
        _describe(
            self.name_edit,
            "Your name",
            f"The name the others see on your picture; empty shows {DEFAULT_NAME}.",
        )
        self.name_error = self._error_label("nameError", "Name problem")
        you = QGroupBox("You")
        you.setObjectName("youBox")
        you_form = QFormLayout(you)
        you_form.addRow("Your &name", self.name_edit)
        you_form.addRow(self.name_error)

        # Devices
        self.camera_picker = DevicePicker("cameraPicker", editable=True, width_in_chars=18)
        self.camera_picker.set_choices(camera_choices(scan.cameras), settings.video)
        _describe(
            self.camera_picker,
            "Camera",
            "What your calls send: a camera, the test pattern, or a video file's path.",
        )
        self.microphone_picker = DevicePicker("microphonePicker", editable=True, width_in_chars=18)
        self.microphone_picker.set_choices(microphone_choices(scan.microphones), settings.audio)
        _describe(
            self.microphone_picker,
            "Microphone",
            "What the others hear: a microphone, a test tone, nothing, or an audio file's path.",
        )
        self.speaker_picker = DevicePicker("speakerPicker", editable=False, width_in_chars=18)
        self.speaker_picker.set_choices(speaker_choices(scan.speakers), settings.speaker)
        _describe(self.speaker_picker, "Speaker", "Where the others' voices play.")
        self.volume_slider = QSlider(Qt.Orientation.Horizontal)
        self.volume_slider.setObjectName("volumeSlider")
        self.volume_slider.setRange(0, 200)
        self.volume_slider.setPageStep(10)
        self.volume_slider.setValue(settings.volume)
        _describe(
            self.volume_slider,
            "Speaker volume",
            "How loud the others are, 0 to 200 percent; it changes a call in progress at once.",
        )
        self.volume_label = QLabel(volume_text(settings.volume))
        self.volume_label.setObjectName("volumeLabel")
        self.volume_label.setMinimumWidth(44)
        self.volume_label.setAccessibleName("Volume in percent")
        self.size_combo = QComboBox()
        self.size_combo.setObjectName("sizeCombo")
        choices = size_choices(settings.resolution)
        self._sizes = [size for _, size in choices]
        for label, _ in choices:
            self.size_combo.addItem(label)
        self.size_combo.setCurrentIndex(self._sizes.index(settings.resolution))
        _describe(
            self.size_combo,
            "Video size",
            "The size of the picture you send; a bigger one needs a faster connection.",
        )
        devices_box = QGroupBox("Devices and video")
        devices_box.setObjectName("devicesBox")
        devices_form = QFormLayout(devices_box)
        devices_form.addRow("&Camera", self.camera_picker)
        devices_form.addRow("&Microphone", self.microphone_picker)
        devices_form.addRow("&Speaker", self.speaker_picker)
        devices_form.addRow("&Volume", _row(self.volume_slider, self.volume_label))
        devices_form.addRow("Video si&ze", self.size_combo)

        # Network
        self.ice_edit = QPlainTextEdit(self._ice_text(settings))
        self.ice_edit.setObjectName("iceEdit")
        self.ice_edit.setTabChangesFocus(True)
        self.ice_edit.setPlaceholderText(f"{ICE_EXAMPLE}\nturn:turn.example.org:3478")
        self.ice_edit.setFixedHeight(self.fontMetrics().lineSpacing() * 4 + 12)
        _describe(
            self.ice_edit,
            "ICE servers",
            "STUN or TURN servers that help calls through firewalls, one a line;"
            " empty uses only the signaling server's.",
        )
        self.ice_error = self._error_label("iceError", "ICE servers problem")
        self.relay_check = QCheckBox("Send media only through a &TURN relay")
        self.relay_check.setObjectName("relayCheck")
        self.relay_check.setChecked(settings.relay_only)
        _describe(
            self.relay_check,
            "Relay only",
            "Calls go through a TURN relay only, so the others never learn your address;"
            " they need one (the server's, or one above).",
        )
        network = QGroupBox("Network")
        network.setObjectName("networkBox")
        network_form = QFormLayout(network)
        network_form.addRow("&ICE servers", self.ice_edit)
        network_form.addRow(self.ice_error)
        network_form.addRow(self.relay_check)

        # Hosting
        self.port_spin = QSpinBox()
        self.port_spin.setObjectName("portSpin")
        self.port_spin.setRange(0, 65535)
        self.port_spin.setSpecialValueText("Any free port")
        self.port_spin.setValue(settings.host_port)
        _describe(
            self.port_spin,
            "Hosting port",
            f"The port Host listens on ({DEFAULT_HOST_PORT} unless you change it;"
            " 0 picks any free port).",
        )
        self.cert_edit = QLineEdit(settings.cert_file)
        self.cert_edit.setObjectName("certEdit")
        self.cert_edit.setPlaceholderText("none: host without TLS (ws://, http://)")
        _describe(
            self.cert_edit,
            "TLS certificate file",
            "A PEM certificate for hosting with TLS (wss://, https://), which a browser"
            " on another machine needs for its camera; empty hosts without TLS.",
        )
        self.cert_button = QPushButton("C&hoose file…")
        self.cert_button.setObjectName("certChooseButton")
        _describe(self.cert_button, "Choose the certificate file", "Pick the certificate file.")
        self.cert_error = self._error_label("certError", "Certificate problem")
        self.key_edit = QLineEdit(settings.key_file)
        self.key_edit.setObjectName("keyEdit")
        self.key_edit.setPlaceholderText("empty: the key is in the certificate file")
        _describe(
            self.key_edit,
            "TLS private key file",
            "The certificate's private key, if it is not in the certificate file.",
        )
        self.key_button = QPushButton("Ch&oose file…")
        self.key_button.setObjectName("keyChooseButton")
        _describe(self.key_button, "Choose the private key file", "Pick the private key file.")
        self.key_error = self._error_label("keyError", "Private key problem")
        hosting = QGroupBox("Hosting")
        hosting.setObjectName("hostingBox")
        hosting_form = QFormLayout(hosting)
        hosting_form.addRow("&Port", self.port_spin)
        hosting_form.addRow("Cer&tificate", _row(self.cert_edit, self.cert_button))
        hosting_form.addRow(self.cert_error)
        hosting_form.addRow("Private &key", _row(self.key_edit, self.key_button))
        hosting_form.addRow(self.key_error)

        # Notes, where settings live, the buttons
        override = overridden_text(overridden)
        self.override_label = _hint(override or "", "overrideLabel")
        self.override_label.setVisible(override is not None)
        self.notes_label = QLabel()
        self.notes_label.setObjectName("notesLabel")
        self.notes_label.setWordWrap(True)
        self.notes_label.setVisible(False)
        self.location_label = _hint(location_text(settings_path), "locationLabel")
        self.location_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.location_label.setAccessibleDescription(
            "The file these settings are kept in; the path can be selected and copied."
        )
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.setObjectName("preferencesButtons")
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setObjectName("saveButton")
        self.save_button.setText("Save")
        _describe(self.save_button, "Save", "Keep these settings and close.")
        self.cancel_button = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setText("Cancel")
        _describe(self.cancel_button, "Cancel", "Close without changing anything.")

        column = QVBoxLayout(self)
        for widget in (you, devices_box, network, hosting):
            column.addWidget(widget)
        column.addWidget(self.override_label)
        column.addWidget(self.notes_label)
        column.addWidget(self.location_label)
        column.addWidget(self.buttons)

    def _error_label(self, name: str, accessible: str) -> QLabel:
        label = ErrorLabel()
        label.setObjectName(name)
        label.setAccessibleName(accessible)
        label.setVisible(False)
        return label

    @staticmethod
    def _ice_text(settings: Settings) -> str:
        return PreferencesForm.from_settings(settings).ice_text

    def _wire(self) -> None:
        self.name_edit.textChanged.connect(self._refresh)
        self.camera_picker.currentTextChanged.connect(self._refresh)
        self.microphone_picker.currentTextChanged.connect(self._refresh)
        self.speaker_picker.currentIndexChanged.connect(self._refresh)
        self.volume_slider.valueChanged.connect(self._volume_moved)
        self.size_combo.currentIndexChanged.connect(self._refresh)
        self.ice_edit.textChanged.connect(self._refresh)
        self.relay_check.toggled.connect(self._refresh)
        self.port_spin.valueChanged.connect(self._refresh)
        self.cert_edit.textChanged.connect(self._refresh)
        self.key_edit.textChanged.connect(self._refresh)
        self.cert_button.clicked.connect(
            lambda: self._choose(self.cert_edit, "Choose the TLS certificate")
        )
        self.key_button.clicked.connect(
            lambda: self._choose(self.key_edit, "Choose the TLS private key")
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    # -- reading and checking ----------------------------------------------------

    def form(self) -> PreferencesForm:
        """What the fields hold now."""
        index = self.size_combo.currentIndex()
        return PreferencesForm(
            name=self.name_edit.text(),
            video=self.camera_picker.spec(),
            audio=self.microphone_picker.spec(),
            speaker=self.speaker_picker.spec(),
            volume=self.volume_slider.value(),
            resolution=self._sizes[index] if index >= 0 else self._initial.resolution,
            ice_text=self.ice_edit.toPlainText(),
            relay_only=self.relay_check.isChecked(),
            host_port=self.port_spin.value(),
            cert_file=self.cert_edit.text(),
            key_file=self.key_edit.text(),
        )

    def settings(self) -> Settings:
        """The settings the fields stand for (the ones shown, with the edits)."""
        return settings_from_form(self._initial, self.form())

    @property
    def problems(self) -> dict[str, str]:
        """What keeps Save off, by field ("name", "ice_servers", "cert_file", "key_file")."""
        return dict(self._problems)

    def _volume_moved(self, percent: int) -> None:
        self.volume_label.setText(volume_text(percent))
        self.volumeChanged.emit(percent)
        self._refresh()

    def _refresh(self) -> None:
        form = self.form()
        self._problems = form_problems(form, file_exists=self._file_exists)
        fields = (
            ("name", self.name_edit, self.name_error),
            ("ice_servers", self.ice_edit, self.ice_error),
            ("cert_file", self.cert_edit, self.cert_error),
            ("key_file", self.key_edit, self.key_error),
        )
        grew = False
        for key, field, label in fields:
            problem = self._problems.get(key, "")
            label.setText(problem)
            grew |= bool(problem) and not label.isVisible()
            label.setVisible(bool(problem))
            base = field.toolTip()
            field.setAccessibleDescription(f"{problem} {base}" if problem else base)
        self.save_button.setEnabled(not self._problems)
        notes = (
            []
            if self._problems
            else change_notes(
                self._initial,
                settings_from_form(self._initial, form),
                in_call=self._in_call,
                hosting=self._hosting,
            )
        )
        self.notes_label.setText(" ".join(notes))
        self.notes_label.setAccessibleName(" ".join(notes) or "No notes")
        grew |= bool(notes) and not self.notes_label.isVisible()
        self.notes_label.setVisible(bool(notes))
        if grew and self.isVisible():
            self._fit_height()

    def _fit_height(self) -> None:
        # A line that just appeared must not be squeezed: grow to fit it (never shrink).
        layout = self.layout()
        if layout is None:
            return
        layout.activate()
        wanted = layout.totalHeightForWidth(self.width())
        if wanted > self.height():
            self.resize(self.width(), wanted)

    def accept(self) -> None:
        """Close with Save, unless a field has a problem (then show it and stay)."""
        self._refresh()
        if self._problems:
            first = next(iter(self._problems))
            widget = {
                "name": self.name_edit,
                "ice_servers": self.ice_edit,
                "cert_file": self.cert_edit,
                "key_file": self.key_edit,
            }.get(first)
            if widget is not None:
                widget.setFocus()
            return
        super().accept()

    # -- file pickers ------------------------------------------------------------

    def _choose(self, edit: QLineEdit, title: str) -> None:
        chooser = self._choose_file
        if chooser is None:
            from callapp.ui.services import QtUiServices

            chooser = QtUiServices(self).choose_file

        async def pick() -> None:
            try:
                chosen = await chooser(title, edit.text())
            except Exception as exc:  # a picker that fails must not take the dialog down
                log.warning("file picker failed: %s", exc)
                return
            if chosen:
                edit.setText(chosen)

        task = asyncio.ensure_future(pick())
        self._pickers.add(task)
        task.add_done_callback(self._pickers.discard)


async def edit_preferences(
    parent: QWidget | None,
    settings: Settings,
    devices: DeviceScan | None,
    *,
    settings_path: str | None = None,
    in_call: bool = False,
    hosting: bool = False,
    overridden: Iterable[str] = (),
    on_volume: Callable[[int], None] | None = None,
    choose_file: FileChooser | None = None,
) -> Settings | None:
    """Show the Preferences dialog over ``parent``; the new settings, or None if cancelled.

    Non-blocking: the dialog is opened window-modal with ``open()`` and its
    ``finished`` signal awaited, so no nested event loop runs under qasync.
    ``settings_path`` is shown as where settings live; ``in_call`` and
    ``hosting`` make the dialog say which changes wait for the next call or
    the next time you host; ``overridden`` names the fields command-line
    flags set for this run (:meth:`Overrides.fields`). ``on_volume`` gets every
    volume move (to apply it to a call at once), and the old volume back on
    Cancel. Nothing is saved here: the caller hands the result to
    ``SettingsKeeper.edit`` and ``save``.
    """
    dialog = PreferencesDialog(
        settings,
        devices,
        settings_path=settings_path,
        parent=parent,
        in_call=in_call,
        hosting=hosting,
        overridden=overridden,
        choose_file=choose_file,
    )
    if on_volume is not None:
        dialog.volumeChanged.connect(on_volume)
    answer: asyncio.Future[Settings | None] = asyncio.get_running_loop().create_future()

    def finished(result: int) -> None:
        if answer.done():
            return
        accepted = result == int(QDialog.DialogCode.Accepted)
        answer.set_result(dialog.settings() if accepted else None)

    dialog.finished.connect(finished)
    dialog.open()
    try:
        chosen = await answer
        moved = dialog.volume_slider.value() != settings.volume
    finally:
        if dialog.isVisible():  # the awaiting task was cancelled: close the dialog too
            dialog.reject()
        dialog.deleteLater()
    if chosen is None and moved and on_volume is not None:
        on_volume(settings.volume)  # Cancel puts the volume back
    return chosen


__all__ = ["FileChooser", "PreferencesDialog", "edit_preferences"]
