"""Mute, speaker volume and the device pickers: view-model, settings and the real window."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from callapp.call.state import CallPhase
from callapp.ui.devices import (
    DEFAULT_SPEAKER,
    DeviceScan,
    camera_choices,
    microphone_choices,
    scan_devices,
    speaker_choices,
    speaker_setting,
    spec_for,
)
from callapp.ui.launcher import build_parser
from callapp.ui.main_window import MainWindow
from callapp.ui.settings import Settings, SettingsStore
from callapp.ui.status import audio_state_text, mute_button_text, notice_text
from callapp.ui.viewmodel import CallOptions
from tests.media.audio_null import NULL_DEVICE, alsa_null_config
from tests.ui.fakes import until
from tests.ui.test_viewmodel import Harness, run


def make_window(qtbot: QtBot, h: Harness, store: SettingsStore | None = None) -> MainWindow:
    window = MainWindow(h.vm, store, allow_loopback=True)
    qtbot.addWidget(window)
    window.resize(1000, 600)
    window.show()
    return window


# -- view-model -------------------------------------------------------------------


def test_mute_goes_to_the_session_and_survives_the_next_session(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    run(qloop, h.vm.join("ws://10.0.0.1:8765/ws", "one"))
    session = h.sessions[0]
    run(qloop, h.vm.set_muted(True))
    assert ("set_muted", True) in session.calls
    assert session.snapshot.muted
    assert h.vm.muted
    assert h.seen["mutedChanged"] == [True]
    # Another server: a new session starts muted, with no unmuted moment between.
    run(qloop, h.vm.join("ws://10.0.0.2:8765/ws", "two"))
    second = h.sessions[1]
    assert second.calls[0] == ("set_muted", True)
    assert second.snapshot.muted
    assert h.seen["mutedChanged"] == [True], "the state never flickered"
    run(qloop, h.vm.set_muted(False))
    assert second.calls[-1] == ("set_muted", False)
    assert h.seen["mutedChanged"] == [True, False]
    assert not h.vm.muted


def test_mute_before_any_session_is_kept_for_the_first(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.vm.set_muted(True))
    assert h.vm.muted
    assert h.seen["mutedChanged"] == [True]
    run(qloop, h.vm.join("ws://10.0.0.1:8765/ws", "one"))
    assert h.sessions[0].calls[0] == ("set_muted", True)
    assert h.sessions[0].snapshot.muted


def test_the_session_saying_unmuted_is_followed(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.vm.join("ws://10.0.0.1:8765/ws", "one"))
    run(qloop, h.vm.set_muted(True))
    h.sessions[0].publish(muted=False)  # e.g. the engine reset it
    assert not h.vm.muted
    assert h.last("mutedChanged") is False


def test_volume_goes_to_the_session_and_into_later_configs(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()
    run(qloop, h.vm.join("ws://10.0.0.1:8765/ws", "one"))
    run(qloop, h.vm.set_volume(1.5))
    assert h.sessions[0].calls[-1] == ("set_volume", 1.5)
    run(qloop, h.vm.set_volume(7.0))  # held to the engine's range
    assert h.sessions[0].calls[-1] == ("set_volume", 2.0)
    run(qloop, h.vm.join("ws://10.0.0.2:8765/ws", "two"))
    assert h.sessions[1].config.volume == 2.0
    assert h.vm.error == ""


def test_device_choices_become_the_call_config(qloop: asyncio.AbstractEventLoop) -> None:
    settings = Settings().with_changes(
        video="camera:0", audio="mic:USB Mic", speaker="HDMI", volume=50
    )
    h = Harness()
    h.vm.options = CallOptions.from_settings(settings, allow_loopback=True)
    run(qloop, h.vm.join("ws://10.0.0.1:8765/ws", "one"))
    config = h.sessions[0].config
    assert (config.video, config.audio, config.speaker, config.volume) == (
        "camera:0",
        "mic:USB Mic",
        "HDMI",
        0.5,
    )
    # The default speaker is None in the config, "none" stays "none".
    default = CallOptions.from_settings(Settings()).config("ws://h:1/ws")
    assert (default.audio, default.speaker, default.volume) == ("mic", None, 1.0)
    off = CallOptions.from_settings(Settings().with_changes(speaker="none", audio="none"))
    assert (off.config("ws://h:1/ws").speaker, off.audio) == ("none", "none")


def test_refresh_lists_devices_off_the_gui_thread(qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    run(qloop, h.vm.refresh_devices())
    assert h.scanner.asked == [(True, True)], "idle: cameras probed, PortAudio rescanned"
    assert h.last("devicesChanged") == h.scanner.scan
    # In a call: the camera in use is not probed, PortAudio is not restarted, and
    # the cameras found before are kept.
    run(qloop, h.vm.join("ws://10.0.0.1:8765/ws", "one"))
    h.sessions[0].media_up()
    run(qloop, h.vm.refresh_devices())
    assert h.scanner.asked[-1] == (False, False)
    assert h.vm.devices is not None
    assert h.vm.devices.cameras == h.scanner.scan.cameras
    run(qloop, h.vm.shutdown())  # no timer ticks into the next test's loop


def test_a_failing_device_listing_leaves_the_pickers_alone(
    qloop: asyncio.AbstractEventLoop,
) -> None:
    h = Harness()

    def broken(*, cameras: bool = True, rescan_audio: bool = False) -> DeviceScan:
        raise OSError("PortAudio exploded")

    h.vm._device_scanner = broken
    run(qloop, h.vm.refresh_devices())
    assert "devicesChanged" not in h.seen
    assert h.vm.error == ""


# -- pure wording and choices -------------------------------------------------------


def test_choices_offer_what_the_system_has_plus_the_fallbacks() -> None:
    from callapp.ui.devices import CameraFound

    cams = camera_choices((CameraFound(2, 640, 480),))
    assert [c.spec for c in cams] == ["camera", "camera:2", "test"]
    assert cams[-1].label == "Test pattern"
    mics = microphone_choices(("USB Mic", "default", "USB Mic"))
    assert [c.spec for c in mics] == ["mic", "mic:USB Mic", "tone:440", "none"]
    assert [c.label for c in mics][-2:] == ["Tone (test)", "None"]
    speakers = speaker_choices(("HDMI",))
    assert [c.spec for c in speakers] == [DEFAULT_SPEAKER, "HDMI", "none"]
    assert spec_for("Tone (test)", mics) == "tone:440"
    assert spec_for(" /tmp/a.wav ", mics) == "/tmp/a.wav"
    assert speaker_setting("") is None
    assert speaker_setting("none") == "none"


def test_mute_and_notice_wording() -> None:
    assert mute_button_text(False) == "Mute"
    assert mute_button_text(True) == "Unmute"
    assert audio_state_text(False) == ""
    assert "muted" in audio_state_text(True).lower()
    joined = (
        "No camera found: sending a test pattern instead\n"
        "No microphone found: the other person will hear silence\n"
        "No speaker found: the other person's audio is not played"
    )
    assert notice_text(joined).splitlines() == [
        "No camera found: sending a test pattern instead.",
        "No microphone found: the other person will hear silence.",
        "No speaker found: the other person's audio is not played.",
    ]
    assert notice_text("Camera 1 failed (No such device): sending a test pattern").count("\n") == 0
    assert notice_text(None) == ""


def test_settings_round_trip_audio_choices(temporary_settings: Path) -> None:
    wanted = Settings().with_changes(audio="tone:880", speaker="none", volume=150)
    SettingsStore().save(wanted)
    again = SettingsStore().load()
    assert (again.audio, again.speaker, again.volume) == ("tone:880", "none", 150)
    assert Settings().with_changes(volume=900).volume == 200


def test_unreadable_volume_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "odd.ini"
    path.write_text("[media]\nvolume=loud\n")
    assert SettingsStore(path).load().volume == 100


def test_launcher_takes_audio_and_speaker_flags() -> None:
    args = build_parser().parse_args(["--audio", "tone:440", "--speaker", "none"])
    assert (args.audio, args.speaker) == ("tone:440", "none")
    defaults = build_parser().parse_args([])
    assert (defaults.audio, defaults.speaker) == (None, None)


# -- the window ---------------------------------------------------------------------


def test_mute_button_follows_the_snapshot(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    window = make_window(qtbot, h)
    assert window.mute_button.text() == "Mute"
    assert not window.muted_label.isVisible()
    run(qloop, h.vm.join("ws://10.0.0.1:8765/ws", "one"))
    QTest.mouseClick(window.mute_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: h.sessions[0].snapshot.muted and not h.vm.busy))
    assert ("set_muted", True) in h.sessions[0].calls
    assert window.mute_button.isChecked()
    assert window.mute_button.text() == "Unmute"
    assert window.muted_label.isVisible()
    assert "muted" in window.muted_label.text().lower()
    h.sessions[0].publish(muted=False)  # the engine's word wins
    assert not window.mute_button.isChecked()
    assert window.mute_button.text() == "Mute"
    assert not window.muted_label.isVisible()


def test_volume_slider_sets_the_volume_and_is_remembered(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, temporary_settings: Path
) -> None:
    h = Harness()
    window = make_window(qtbot, h, SettingsStore())
    assert window.volume_slider.value() == 100
    assert (window.volume_slider.minimum(), window.volume_slider.maximum()) == (0, 200)
    run(qloop, h.vm.join("ws://10.0.0.1:8765/ws", "one"))
    window.volume_slider.setValue(150)
    qloop.run_until_complete(until(lambda: ("set_volume", 1.5) in h.sessions[0].calls))
    assert window.volume_label.text() == "150%"
    assert SettingsStore().load().volume == 150
    h2 = Harness()
    again = make_window(qtbot, h2, SettingsStore())
    assert again.volume_slider.value() == 150
    assert h2.sessions == [], "restoring the slider calls nothing"


def test_pickers_list_the_scan_and_become_settings(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, temporary_settings: Path
) -> None:
    h = Harness()
    window = make_window(qtbot, h, SettingsStore())
    QTest.mouseClick(window.refresh_devices_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: h.vm.devices is not None))
    assert window.video_combo.specs() == ["camera", "camera:0", "test"]
    assert window.mic_combo.specs() == ["mic", "mic:USB Mic", "tone:440", "none"]
    assert window.speaker_combo.specs() == ["", "HDMI Out", "USB Mic", "none"]
    window.video_combo.setCurrentIndex(window.video_combo.specs().index("camera:0"))
    window.mic_combo.setCurrentIndex(window.mic_combo.specs().index("mic:USB Mic"))
    window.speaker_combo.setCurrentIndex(window.speaker_combo.specs().index("HDMI Out"))
    window.room_edit.setText("r")
    window.server_edit.setText("ws://10.0.0.1:8765/ws")
    QTest.mouseClick(window.join_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: h.sessions and not h.vm.busy))
    config = h.sessions[0].config
    assert (config.video, config.audio, config.speaker) == ("camera:0", "mic:USB Mic", "HDMI Out")
    saved = SettingsStore().load()
    assert (saved.video, saved.audio, saved.speaker) == ("camera:0", "mic:USB Mic", "HDMI Out")
    # A typed spec still works in the editable pickers (a file, another tone).
    window.mic_combo.setEditText("tone:880")
    assert window.current_settings().audio == "tone:880"
    # A new window restores the choices, even a speaker no longer listed.
    SettingsStore().save(saved.with_changes(speaker="Gone Speaker"))
    again = make_window(qtbot, Harness(), SettingsStore())
    assert again.mic_combo.spec() == "mic:USB Mic"
    assert again.speaker_combo.spec() == "Gone Speaker"
    assert "not found" in again.speaker_combo.currentText()


def test_joined_notices_show_one_per_line(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    window = make_window(qtbot, h)
    run(qloop, h.vm.join("ws://10.0.0.1:8765/ws", "one"))
    h.sessions[0].publish(
        phase=CallPhase.CONNECTED,
        notice="No microphone found: the other person will hear silence\n"
        "No speaker found: the other person's audio is not played",
    )
    assert window.notice_label.isVisible()
    lines = window.notice_label.text().splitlines()
    assert lines[0].startswith("No microphone found")
    assert lines[1].startswith("No speaker found")
    run(qloop, h.vm.shutdown())


def test_real_pickers_list_the_alsa_null_device(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    """The real scanner, on a thread, under ALSA's null device: both pickers offer it."""
    with alsa_null_config(tmp_path):
        direct = scan_devices(cameras=False)
        assert NULL_DEVICE in direct.microphones
        h = Harness()
        h.vm._device_scanner = scan_devices  # the real one
        window = make_window(qtbot, h)
        QTest.mouseClick(window.refresh_devices_button, Qt.MouseButton.LeftButton)
        qloop.run_until_complete(until(lambda: h.vm.devices is not None, 20))
        assert f"mic:{NULL_DEVICE}" in window.mic_combo.specs()
        assert NULL_DEVICE in window.speaker_combo.specs()
        labels = [window.speaker_combo.itemText(i) for i in range(window.speaker_combo.count())]
        assert NULL_DEVICE in labels
        assert "Test pattern" in [
            window.video_combo.itemText(i) for i in range(window.video_combo.count())
        ]
        window.speaker_combo.setCurrentIndex(window.speaker_combo.specs().index(NULL_DEVICE))
        assert window.current_settings().speaker == NULL_DEVICE


@pytest.mark.parametrize("muted", [False, True])
def test_stats_json_reports_audio_and_mute(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, muted: bool
) -> None:
    import time

    from callapp.ui.launcher import stats_report

    h = Harness()
    window = make_window(qtbot, h)
    run(qloop, h.vm.join("ws://10.0.0.1:8765/ws", "one"))
    h.sessions[0].media_up()
    run(qloop, h.vm.set_muted(muted))
    session = h.sessions[0]
    h.vm.last_stats = run(qloop, session.stats())
    report = stats_report(window, time.monotonic())
    assert report["audio_frames_received"] == 120
    assert report["audio_frames_sent"] == 125
    assert report["muted"] is muted
    run(qloop, h.vm.shutdown())
