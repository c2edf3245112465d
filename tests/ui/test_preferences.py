"""The Preferences dialog: its logic without a window, then the dialog itself."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QWidget,
)
from pytestqt.qtbot import QtBot

from callapp.ui.devices import CameraFound, DeviceScan
from callapp.ui.logic.preferences import (
    PreferencesForm,
    applies_now,
    change_notes,
    changes_needing_restart,
    form_problems,
    ice_server_problem,
    ice_servers_problem,
    location_text,
    name_problem,
    overridden_text,
    preference_changes,
    settings_from_form,
    size_choices,
    tls_problems,
)
from callapp.ui.settings import Overrides, Settings, SettingsKeeper, SettingsStore, effective
from callapp.ui.views.preferences import PreferencesDialog, edit_preferences
from tests.ui.fakes import until

GOOD_ICE = (
    "stun:stun.example.org:3478",
    "stun:192.0.2.7",
    "stuns:stun.example.org:5349",
    "turn:turn.example.org:3478?transport=udp",
    "turns:turn.example.org?transport=tcp",
    "turn:turn_1.example.org",
)
BAD_ICE = {
    "stun.example.org:3478": "does not start with stun:",
    "http://stun.example.org": "does not start with stun:",
    "stun://stun.example.org:3478": "Leave out the “//”",
    "STUN:stun.example.org": "in small letters",
    "stun:stun.example.org?transport=udp": "Only TURN servers",
    "turn:turn.example.org?transport=sctp": "only be udp or tcp",
    "stun:": "has no server name",
    "stun::3478": "has no server name",
    "stun:stun.example.org:port": "must be a number",
    "stun:stun.example.org:0": "between 1 and 65535",
    "stun:stun.example.org:70000": "between 1 and 65535",
    "turn:ana@turn.example.org": "user name or password",
    "stun:[2001:db8::1]:3478": "IPv6",
    "stun:bad$host": "not a server name",
    "stun:-host": "not a server name",
}


# -- logic, no window --------------------------------------------------------------------


@pytest.mark.parametrize("url", GOOD_ICE)
def test_good_ice_servers_pass_and_aiortc_reads_them(url: str) -> None:
    from aiortc.rtcicetransport import parse_stun_turn_uri

    assert ice_server_problem(url) is None
    parse_stun_turn_uri(url)  # what we let through, the engine can use


@pytest.mark.parametrize(("url", "words"), BAD_ICE.items())
def test_bad_ice_servers_are_said_in_plain_words(url: str, words: str) -> None:
    problem = ice_server_problem(url)
    assert problem is not None
    assert words in problem
    assert problem.endswith(".")
    assert "Error" not in problem
    assert "Traceback" not in problem
    try:
        from callapp.ui.logic.wording import looks_technical
    except ImportError:  # the wording module is the window's; the check is a bonus
        return
    assert not looks_technical(problem)


def test_the_ice_field_says_which_line_is_wrong() -> None:
    assert ice_servers_problem("") is None
    assert ice_servers_problem("stun:a:1, stun:b:2\nturn:c") is None
    one = ice_servers_problem("stun.example.org")
    assert one is not None
    assert not one.startswith("Line")
    many = ice_servers_problem("stun:a:1\n\nstun.example.org")
    assert many is not None
    assert many.startswith("Line 3: “stun.example.org” does not start with stun:")


def test_tls_files_must_exist_and_a_key_needs_its_certificate(tmp_path: Path) -> None:
    cert = tmp_path / "lan.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    assert tls_problems("", "") == {}
    assert tls_problems(str(cert), "") == {}
    missing = tls_problems(str(tmp_path / "nope.crt"), "")
    assert missing == {
        "cert_file": f"There is no file at {tmp_path / 'nope.crt'}. Choose the certificate again."
    }
    assert "choose the certificate too" in tls_problems("", str(cert))["key_file"]
    assert "Choose the private key again" in tls_problems(str(cert), "/no/key.pem")["key_file"]
    seen: list[str] = []
    tls_problems("~/c.pem", "", file_exists=lambda p: bool(seen.append(p)) or True)
    assert seen == [str(Path.home() / "c.pem")], "~ is expanded"


def test_a_name_too_long_is_said() -> None:
    assert name_problem("") is None
    assert name_problem("Ana") is None
    problem = name_problem("x" * 70)
    assert problem == "A name can be at most 64 characters long; this one has 70."


def test_the_form_round_trips_the_settings() -> None:
    s = Settings(
        name="Ana",
        video="camera:1",
        audio="tone:440",
        speaker="none",
        volume=150,
        width=1280,
        height=720,
        ice_servers=("stun:a:1", "turn:b"),
        host_port=9000,
        cert_file="/c.pem",
        key_file="/k.pem",
        room="kept",
    )
    form = PreferencesForm.from_settings(s)
    assert form.ice_text == "stun:a:1\nturn:b"
    assert settings_from_form(s, form) == s
    edited = settings_from_form(
        s,
        PreferencesForm(
            name="  Ana \t Lima ",
            video=" ",
            audio="",
            speaker="",
            volume=250,
            resolution=(320, 240),
            ice_text="stun:x:1, stun:y:2\n",
            host_port=0,
            cert_file=" /c2.pem ",
            key_file="",
        ),
    )
    assert edited == s.with_changes(
        name="Ana Lima",
        video="camera",
        audio="mic",
        speaker="",
        volume=200,
        resolution=(320, 240),
        ice_servers=("stun:x:1", "stun:y:2"),
        host_port=0,
        cert_file="/c2.pem",
        key_file="",
    )


def test_form_problems_by_field() -> None:
    form = PreferencesForm.from_settings(Settings())
    assert form_problems(form) == {}
    bad = PreferencesForm(**{**_fields(form), "ice_text": "nope", "key_file": "/k.pem"})
    assert set(form_problems(bad, file_exists=lambda _: True)) == {"ice_servers", "key_file"}


def _fields(form: PreferencesForm) -> dict[str, Any]:
    return {name: getattr(form, name) for name in PreferencesForm.__slots__}


def test_sizes_offered_include_an_unusual_saved_one() -> None:
    labels = [label for label, _ in size_choices((640, 480))]
    assert labels == ["320×240 (small)", "640×480 (standard)", "1280×720 (HD)"]
    assert size_choices((800, 600))[-1] == ("800×600", (800, 600))


def test_what_waits_for_the_next_call_and_what_applies_at_once() -> None:
    old = Settings()
    assert changes_needing_restart(old, old) == []
    assert changes_needing_restart(old, old.with_changes(resolution=(1280, 720))) == [
        "The new video size applies to your next call."
    ]
    assert changes_needing_restart(old, old.with_changes(volume=50, name="Ana")) == []
    assert applies_now(old, old.with_changes(volume=50, name="Ana")) == ("volume", "name")
    both = old.with_changes(video="test", resolution=(320, 240), ice_servers=("stun:a",))
    assert changes_needing_restart(both, both) == []
    assert changes_needing_restart(old, both) == [
        "The new camera, video size and ICE servers apply to your next call."
    ]
    hosted = old.with_changes(host_port=9000, cert_file="/c.pem", audio="none")
    assert changes_needing_restart(old, hosted) == [
        "The new microphone applies to your next call.",
        "The new hosting port and TLS certificate apply the next time you host.",
    ]
    assert changes_needing_restart(old, hosted, in_call=False, hosting=False) == []
    assert changes_needing_restart(old, hosted, in_call=False) == [
        "The new hosting port and TLS certificate apply the next time you host."
    ]
    assert change_notes(old, old.with_changes(volume=50, speaker="none")) == [
        "The new volume applies to this call at once.",
        "The new speaker applies to your next call.",
    ]
    assert [c.field for c in preference_changes(old, hosted)] == ["audio", "host_port", "tls"]


def test_words_for_overridden_settings_and_the_settings_file() -> None:
    assert overridden_text(()) is None
    fields = Overrides(video="test", resolution=(320, 240)).fields()
    assert overridden_text(fields) == (
        "For this run only, the command line set the camera and video size."
        " Change a setting here to keep your choice."
    )
    assert location_text("/home/ana/.config/callapp/callapp.ini") == (
        "Settings are saved in /home/ana/.config/callapp/callapp.ini"
    )
    assert "no settings file" in location_text(None)


# -- the dialog ----------------------------------------------------------------------------

SCAN = DeviceScan(
    cameras=(CameraFound(0, 1280, 720), CameraFound(2, 640, 480)),
    microphones=("default", "USB Mic"),
    speakers=("default", "Desk Speakers"),
)


def full_settings(tmp_path: Path) -> Settings:
    cert, key = tmp_path / "lan.crt", tmp_path / "lan.key"
    cert.write_text("cert")
    key.write_text("key")
    return Settings(
        name="Ana",
        video="camera:2",
        audio="mic:USB Mic",
        speaker="Desk Speakers",
        volume=150,
        width=1280,
        height=720,
        ice_servers=("stun:stun.example.org:3478", "turn:turn.example.org"),
        host_port=9000,
        cert_file=str(cert),
        key_file=str(key),
    )


def make_dialog(qtbot: QtBot, settings: Settings, **kwargs: Any) -> PreferencesDialog:
    dialog = PreferencesDialog(settings, kwargs.pop("devices", SCAN), **kwargs)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_the_dialog_shows_the_settings(qtbot: QtBot, tmp_path: Path) -> None:
    s = full_settings(tmp_path)
    d = make_dialog(qtbot, s, settings_path=str(tmp_path / "callapp.ini"))
    assert d.name_edit.text() == "Ana"
    assert d.camera_picker.currentText() == "Camera 2 (640×480)"
    assert d.camera_picker.spec() == "camera:2"
    assert d.microphone_picker.currentText() == "USB Mic"
    assert d.speaker_picker.currentText() == "Desk Speakers"
    assert d.volume_slider.value() == 150
    assert d.volume_label.text() == "150%"
    assert d.size_combo.currentText() == "1280×720 (HD)"
    assert d.ice_edit.toPlainText() == "stun:stun.example.org:3478\nturn:turn.example.org"
    assert d.port_spin.value() == 9000
    assert d.cert_edit.text() == s.cert_file
    assert d.key_edit.text() == s.key_file
    assert d.location_label.text() == f"Settings are saved in {tmp_path / 'callapp.ini'}"
    assert d.save_button.isEnabled()
    assert d.save_button.text() == "Save"
    assert not d.notes_label.isVisible()
    assert not d.override_label.isVisible()
    assert d.settings() == s, "nothing edited: the same settings back"


def test_a_device_the_system_no_longer_has_is_kept(qtbot: QtBot) -> None:
    s = Settings(speaker="Old USB Speaker", video="/videos/clip.mp4")
    d = make_dialog(qtbot, s, devices=None)
    assert d.speaker_picker.currentText() == "Old USB Speaker (not found)"
    assert d.camera_picker.currentText() == "/videos/clip.mp4"
    assert d.settings() == s
    assert d.port_spin.text() == "8765"


def test_edits_come_back(qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    s = full_settings(tmp_path)
    moved: list[int] = []

    async def scenario() -> Settings | None:
        task = asyncio.ensure_future(
            edit_preferences(None, s, SCAN, settings_path="x.ini", on_volume=moved.append)
        )
        d = await opened()
        d.name_edit.setText("Ana Lima")
        d.camera_picker.setCurrentIndex(d.camera_picker.findText("Test pattern"))
        d.microphone_picker.setCurrentIndex(d.microphone_picker.findText("Tone (test)"))
        d.speaker_picker.setCurrentIndex(d.speaker_picker.findText("None"))
        d.volume_slider.setValue(80)
        d.size_combo.setCurrentIndex(d.size_combo.findText("320×240 (small)"))
        d.ice_edit.setPlainText("stun:other.example.org:3478")
        d.port_spin.setValue(0)
        d.key_edit.clear()
        QTest.mouseClick(d.save_button, Qt.MouseButton.LeftButton)
        return await task

    result = qloop.run_until_complete(scenario())
    assert result == s.with_changes(
        name="Ana Lima",
        video="test",
        audio="tone:440",
        speaker="none",
        volume=80,
        resolution=(320, 240),
        ice_servers=("stun:other.example.org:3478",),
        host_port=0,
        key_file="",
    )
    assert moved[-1] == 80, "the volume reached the caller as it moved"


def test_cancel_returns_none_and_puts_the_volume_back(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    moved: list[int] = []

    async def scenario() -> Settings | None:
        task = asyncio.ensure_future(
            edit_preferences(None, Settings(volume=100), None, on_volume=moved.append)
        )
        d = await opened()
        d.volume_slider.setValue(40)
        d.name_edit.setText("Someone else")
        QTest.mouseClick(d.cancel_button, Qt.MouseButton.LeftButton)
        return await task

    assert qloop.run_until_complete(scenario()) is None
    assert moved == [40, 100]


def test_escape_cancels_too(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    async def scenario() -> Settings | None:
        task = asyncio.ensure_future(edit_preferences(None, Settings(), None))
        d = await opened()
        QTest.keyClick(d, Qt.Key.Key_Escape)
        return await task

    assert qloop.run_until_complete(scenario()) is None


def test_a_bad_ice_line_shows_the_error_and_blocks_save(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    async def scenario() -> tuple[bool, Settings | None]:
        task = asyncio.ensure_future(edit_preferences(None, Settings(), None))
        d = await opened()
        d.ice_edit.setPlainText("stun:good.example.org:3478\nstun.example.org:3478")
        assert d.ice_error.isVisible()
        assert d.ice_error.text() == (
            "Line 2: “stun.example.org:3478” does not start with stun:, stuns:, turn: or"
            " turns:. Write it like stun:stun.example.org:3478."
        )
        assert d.ice_edit.accessibleDescription().startswith("Line 2:"), "read out too"
        assert not d.save_button.isEnabled()
        d.accept()  # Enter, or a script: still refused
        await asyncio.sleep(0.05)
        still_open = d.isVisible() and not task.done()
        d.ice_edit.setPlainText("stun:good.example.org:3478\nstun:stun.example.org:3478")
        assert not d.ice_error.isVisible()
        assert d.save_button.isEnabled()
        QTest.mouseClick(d.save_button, Qt.MouseButton.LeftButton)
        return still_open, await task

    still_open, result = qloop.run_until_complete(scenario())
    assert still_open
    assert result is not None
    assert result.ice_servers == ("stun:good.example.org:3478", "stun:stun.example.org:3478")


def test_missing_certificate_files_block_save(qtbot: QtBot, tmp_path: Path) -> None:
    d = make_dialog(qtbot, Settings())
    d.key_edit.setText(str(tmp_path / "lan.key"))
    assert d.key_error.isVisible()
    assert "choose the certificate too" in d.key_error.text()
    assert not d.save_button.isEnabled()
    d.cert_edit.setText(str(tmp_path / "missing.crt"))
    assert d.cert_error.text() == (
        f"There is no file at {tmp_path / 'missing.crt'}. Choose the certificate again."
    )
    assert set(d.problems) == {"cert_file", "key_file"}
    d.cert_edit.clear()
    d.key_edit.clear()
    assert d.problems == {}
    assert d.save_button.isEnabled()


def test_the_file_pickers_fill_the_fields(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("c")
    key.write_text("k")
    asked: list[tuple[str, str]] = []
    answers = [str(cert), str(key), None]

    async def choose(title: str, start: str) -> str | None:
        asked.append((title, start))
        return answers.pop(0)

    d = make_dialog(qtbot, Settings(), choose_file=choose)

    async def scenario() -> None:
        QTest.mouseClick(d.cert_button, Qt.MouseButton.LeftButton)
        await until(lambda: d.cert_edit.text() == str(cert))
        QTest.mouseClick(d.key_button, Qt.MouseButton.LeftButton)
        await until(lambda: d.key_edit.text() == str(key))
        QTest.mouseClick(d.key_button, Qt.MouseButton.LeftButton)  # cancelled: kept
        await until(lambda: len(asked) == 3)
        await asyncio.sleep(0.02)

    qloop.run_until_complete(scenario())
    assert asked == [
        ("Choose the TLS certificate", ""),
        ("Choose the TLS private key", ""),
        ("Choose the TLS private key", str(key)),
    ]
    assert d.key_edit.text() == str(key)
    assert d.settings().tls_files == (str(cert), str(key))


def test_in_a_call_the_dialog_says_what_waits(qtbot: QtBot) -> None:
    d = make_dialog(qtbot, Settings(), in_call=True, hosting=True)
    assert not d.notes_label.isVisible()
    d.size_combo.setCurrentIndex(d.size_combo.findText("1280×720 (HD)"))
    assert d.notes_label.isVisible()
    assert d.notes_label.text() == "The new video size applies to your next call."
    d.volume_slider.setValue(120)
    d.port_spin.setValue(9001)
    assert d.notes_label.text() == (
        "The new volume applies to this call at once."
        " The new video size applies to your next call."
        " The new hosting port applies the next time you host."
    )


def test_the_dialog_names_settings_the_command_line_set(qtbot: QtBot) -> None:
    overrides = Overrides(video="test")
    d = make_dialog(qtbot, effective(Settings(), overrides), overridden=overrides.fields())
    assert d.override_label.isVisible()
    assert "the command line set the camera" in d.override_label.text()


def test_every_control_has_an_accessible_name_and_description(qtbot: QtBot) -> None:
    d = make_dialog(qtbot, Settings(), in_call=True)
    d.ice_edit.setPlainText("nope")  # the error label shows too
    controls = [
        w
        for w in d.findChildren(QWidget)
        if w.isVisible()
        and w.focusPolicy() != Qt.FocusPolicy.NoFocus
        # an editable combo's or a spin box's own line edit is part of that control
        and not isinstance(w.parentWidget(), QComboBox | QAbstractSpinBox)
    ]
    assert len(controls) >= 12
    unnamed = [w.objectName() or type(w).__name__ for w in controls if not w.accessibleName()]
    assert unnamed == []
    undescribed = [w.objectName() for w in controls if not w.accessibleDescription()]
    assert undescribed == []
    labels = [w for w in d.findChildren(QAbstractButton) if w.isVisible()]
    assert sorted(b.text() for b in labels) == [
        "C&hoose file…",
        "Cancel",
        "Ch&oose file…",
        "Save",
        "Send media only through a &TURN relay",
    ]
    assert d.ice_error.accessibleName() == "ICE servers problem"


def test_flags_are_not_saved_through_the_dialog(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    path = tmp_path / "callapp.ini"
    SettingsStore(path).save(Settings(video="camera", audio="mic"))
    keeper = SettingsKeeper(SettingsStore(path), Overrides(video="test", audio="none"))

    async def scenario() -> Settings | None:
        task = asyncio.ensure_future(
            edit_preferences(None, keeper.current, None, settings_path=keeper.location)
        )
        d = await opened()
        assert d.camera_picker.spec() == "test", "this run's flag is shown"
        d.name_edit.setText("Ana")
        d.microphone_picker.setCurrentIndex(d.microphone_picker.findText("Tone (test)"))
        QTest.mouseClick(d.save_button, Qt.MouseButton.LeftButton)
        return await task

    result = qloop.run_until_complete(scenario())
    assert result is not None
    keeper.edit(result)
    assert keeper.save()
    saved = SettingsStore(path).load()
    assert saved.video == "camera", "the --video flag was not written"
    assert (saved.name, saved.audio) == ("Ana", "tone:440"), "what the person changed was"
    assert keeper.current.video == "test"


async def opened(limit: float = 10.0) -> PreferencesDialog:
    """The Preferences dialog once it is on screen."""
    found: list[PreferencesDialog] = []

    def shown() -> bool:
        found[:] = [
            w
            for w in QApplication.topLevelWidgets()
            if isinstance(w, PreferencesDialog) and w.isVisible()
        ]
        return bool(found)

    await until(shown, limit)
    return found[-1]
