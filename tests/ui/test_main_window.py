"""The window renders the view-model and forwards clicks (fake session, real widgets)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from callapp.call.state import CallPhase, EndReason
from callapp.ui.main_window import MainWindow
from callapp.ui.services import QtUiServices
from callapp.ui.settings import SettingsStore
from tests.ui.fakes import until
from tests.ui.test_video_view import solid
from tests.ui.test_viewmodel import Harness


def make_window(qtbot: QtBot, h: Harness, store: SettingsStore | None = None) -> MainWindow:
    window = MainWindow(h.vm, store, allow_loopback=True)
    qtbot.addWidget(window)
    window.resize(1000, 600)
    window.show()
    return window


def test_host_shows_what_to_share_and_copies_it(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    h = Harness()
    window = make_window(qtbot, h)
    assert not window.share_box.isVisible()
    assert not window.hang_up_button.isEnabled()
    QTest.mouseClick(window.host_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: h.vm.hosting is not None and not h.vm.busy))
    assert window.share_box.isVisible()
    assert window.share_url_edit.text() == "ws://192.168.7.9:8765/ws"
    room = window.share_room_edit.text()
    assert room
    assert room == window.room_edit.text()
    assert window.id_edit.text() == "self-id-123456"
    assert room in window.status_label.text()
    assert window.host_button.text() == "Stop hosting"
    assert window.join_button.isEnabled()  # to rejoin the room after a hang-up
    QTest.mouseClick(window.copy_url_button, Qt.MouseButton.LeftButton)
    QTest.mouseClick(window.copy_room_button, Qt.MouseButton.LeftButton)
    QTest.mouseClick(window.copy_id_button, Qt.MouseButton.LeftButton)
    assert h.services.clipboard == ["ws://192.168.7.9:8765/ws", room, "self-id-123456"]
    QTest.mouseClick(window.host_button, Qt.MouseButton.LeftButton)  # "Stop hosting"
    qloop.run_until_complete(until(lambda: h.vm.hosting is None and not h.vm.busy))
    assert not window.share_box.isVisible()
    assert window.host_button.text() == "Host"
    assert window.server_edit.text() == "ws://127.0.0.1:8765/ws", "back to the saved server"
    assert h.servers[0].stopped


def test_a_bad_address_shows_in_the_error_banner(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    h = Harness()
    window = make_window(qtbot, h)
    assert not window.error_label.isVisible()
    window.server_edit.setText("ws://exa mple:8765")
    QTest.mouseClick(window.join_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: window.error_label.isVisible()))
    assert "contains spaces" in window.error_label.text()
    assert h.sessions == []


def test_a_call_renders_frames_status_and_hang_up(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    h = Harness()
    window = make_window(qtbot, h)
    window.server_edit.setText("127.0.0.1:9999")
    window.peer_edit.setText("peer-42")
    QTest.mouseClick(window.call_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: h.sessions and h.sessions[0].calls[-1][0] == "dial"))
    session = h.sessions[0]
    assert session.config.server_url == "ws://127.0.0.1:9999/ws"
    assert "Calling peer-42" in window.status_label.text()
    assert window.hang_up_button.isEnabled()
    session.media_up()
    assert session.remote_cb is not None
    assert session.local_cb is not None
    for _ in range(3):
        session.remote_cb(solid(320, 240, (10, 200, 10)))
        session.local_cb(solid(320, 240, (200, 10, 10)))
        window.remote_view.repaint()
        window.local_view.repaint()
    assert window.remote_view.frames_painted == 3
    assert window.local_view.frames_painted == 3
    qloop.run_until_complete(until(lambda: window.stats_label.text()))
    assert "30 fps" in window.stats_label.text()
    assert window.duration_label.text() in ("1:05", "1:06")
    session.publish(notice="No camera found: sending a test pattern instead.")
    assert window.notice_label.isVisible()
    QTest.mouseClick(window.hang_up_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: h.vm.snapshot.phase is CallPhase.WAITING))
    assert "you hung up" in window.status_label.text()
    assert not window.remote_view.has_picture
    assert window.stats_label.text() == ""


def test_peer_leaving_shows_the_banner(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    window = make_window(qtbot, h)
    qloop.run_until_complete(h.vm.join("ws://127.0.0.1:9999/ws", "r1"))
    session = h.sessions[0]
    session.publish(phase=CallPhase.CALLING, peer_id="p")
    session.media_up()
    session.end(EndReason.PEER_LEFT)
    assert window.error_label.isVisible()
    assert window.error_label.text() == "The call ended: the other person left."


def test_camera_button_toggles_video(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    window = make_window(qtbot, h)
    qloop.run_until_complete(h.vm.join("ws://127.0.0.1:9999/ws", ""))
    QTest.mouseClick(window.camera_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: h.sessions[0].snapshot.video_enabled is False))
    assert window.camera_button.text() == "Camera off"


def test_settings_are_saved_and_closing_stops_everything(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, temporary_settings: Path
) -> None:
    h = Harness()
    store = SettingsStore()
    window = make_window(qtbot, h, store)
    window.server_edit.setText("ws://10.1.2.3:8765/ws")
    window.room_edit.setText("kept-room")
    window.video_combo.setCurrentText("test")
    window.resolution_combo.setCurrentIndex(window.resolution_combo.findData("1280x720"))
    window.ice_edit.setText("stun:stun.example.org:3478")
    qloop.run_until_complete(h.vm.host("kept-room"))
    window.close()
    qloop.run_until_complete(until(lambda: window.closed_cleanly))
    assert h.sessions[0].closed
    assert h.servers[0].stopped
    saved = SettingsStore().load()
    assert saved.room == "kept-room"
    assert saved.video == "test"
    assert (saved.width, saved.height) == (1280, 720)
    assert saved.ice_servers == ("stun:stun.example.org:3478",)
    # the share address is shown in the field while hosting but is not a preference
    assert saved.server_url != "ws://192.168.7.9:8765/ws"

    again = MainWindow(h.vm, SettingsStore())
    qtbot.addWidget(again)
    assert again.room_edit.text() == "kept-room"
    assert again.resolution_combo.currentData() == "1280x720"


def test_the_real_incoming_call_box_declines_and_goes_away(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    services = QtUiServices()  # the real prompt, parented to the window
    h = Harness(services)
    window = make_window(qtbot, h)
    services.set_parent(window)

    def box() -> QMessageBox | None:
        return window.findChild(QMessageBox, "incomingCallBox")

    def shown() -> bool:
        found = box()
        return found is not None and found.isVisible()

    async def scenario() -> None:
        await h.vm.join("ws://127.0.0.1:9999/ws", "")
        session = h.sessions[0]
        session.ring("caller-abcdefghij")
        await until(shown)
        found = box()
        assert found is not None
        assert "caller-a" in found.text()
        decline = next(b for b in found.buttons() if b.text() == "Decline")
        decline.click()
        await until(lambda: ("decline", None) in session.calls)
        # a second call whose caller gives up: the box closes by itself
        session.ring("caller-2")
        await until(shown)
        session.end(EndReason.PEER_HUNG_UP)
        await until(lambda: not shown())
        assert ("accept", None) not in session.calls

    qloop.run_until_complete(scenario())
