"""The window with fakes: each screen and state by the words it shows, accessibility,
every shortcut, the toolbar that hides, and closing that asks first."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator

import av
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QScrollBar,
    QTextEdit,
    QWidget,
)
from pytestqt.qtbot import QtBot

from callapp.call.state import EndReason, LegState, SessionSnapshot
from callapp.ui.logic.shortcuts import SHORTCUTS, Action
from callapp.ui.logic.wording import looks_technical
from callapp.ui.models.call import Screen
from callapp.ui.views.main_window import MainWindow
from tests.ui.fakes import FakeCallSession, until
from tests.ui.harness import Harness, make_window, run


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def window(qtbot: QtBot, h: Harness, qloop: asyncio.AbstractEventLoop) -> Iterator[MainWindow]:
    win = make_window(qtbot, h)
    yield win
    run(qloop, h.app.shutdown())


def frame(width: int = 640, height: int = 480) -> av.VideoFrame:
    return av.VideoFrame(width, height, "yuv420p")


def shown_texts(window: MainWindow) -> list[str]:
    texts = window.lobby.texts() + window.call_screen.texts()
    texts += [label.text() for label in window.findChildren(QLabel) if label.isVisible()]
    return [t for t in texts if t]


def in_call(h: Harness, qloop: asyncio.AbstractEventLoop, *names: str) -> FakeCallSession:
    run(qloop, h.app.call.join_text("10.0.0.7:9000/team"))
    for name in names:
        h.session.add_peer(f"id-{name}", name)
    return h.session


def test_the_lobby_offers_start_and_join(window: MainWindow) -> None:
    assert window.current_screen() is window.lobby
    assert window.lobby.start_button.text() == "Start a call"
    assert window.lobby.join_button.text() == "Join"
    assert "invite link" in window.lobby.join_edit.placeholderText()
    assert not window.lobby.banner.isVisible()
    assert window.size().width() >= 640


def test_start_a_call_shows_the_invite_with_a_copy_that_confirms(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    window.lobby.name_edit.setText("Ana")
    QTest.mouseClick(window.lobby.start_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: h.app.hosting is not None and not h.app.busy))
    hosting = h.app.hosting
    assert hosting is not None
    assert window.current_screen() is window.call_screen
    panel = window.call_screen.invite_panel
    assert panel.isVisible()
    assert panel.link_edit.text() == hosting.invite
    assert "#secret=" in panel.link_edit.text()
    assert "only one here" in panel.title_label.text()
    QTest.mouseClick(panel.copy_button, Qt.MouseButton.LeftButton)
    assert h.services.clipboard == [hosting.invite]
    assert panel.copy_button.text() == "Copied"
    assert h.session.config.name == "Ana"
    assert window.call_screen.status_label.text() == "Waiting for others to join."


def test_a_call_with_one_peer(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    session = in_call(h, qloop, "Bo")
    screen = window.call_screen
    assert screen.status_label.text() == "In a call with Bo."
    assert list(screen.tiles) == ["id-Bo"]
    tile = screen.tiles["id-Bo"]
    assert tile.name_label.text() == "Bo"
    assert not screen.invite_panel.isVisible()
    session.frame("id-Bo", frame())
    qloop.run_until_complete(until(lambda: tile.video.frames_painted > 0))
    h.app.call._tick()
    qloop.run_until_complete(until(lambda: screen.quality_label.text() != ""))
    assert "Good connection" in screen.quality_label.text()
    assert "Round trip" in screen.quality_label.toolTip()
    assert screen.timer_label.text() == "1:05"
    self_rect = screen.self_view.geometry()
    assert not tile.geometry().intersects(self_rect)
    assert tile.geometry().width() * tile.geometry().height() > 0.6 * (
        screen.stage.width() * screen.stage.height()
    )


def test_a_call_with_three_peers_and_their_badges(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    session = in_call(h, qloop, "Ana", "Bo", "Cy")
    screen = window.call_screen
    assert screen.status_label.text() == "In a call with Ana, Bo and Cy."
    assert len(screen.tiles) == 3
    session.update_peer("id-Bo", muted=True, camera_off=True)
    session.update_peer("id-Cy", screen=True)
    assert screen.tiles["id-Bo"].badges_label.text() == "Muted · Camera off"
    assert screen.tiles["id-Bo"].video.placeholder == "Bo turned the camera off"
    assert screen.tiles["id-Cy"].badges_label.text() == "Sharing the screen"
    rects = [t.geometry() for t in screen.tiles.values()]
    for i, r in enumerate(rects):
        assert not r.intersects(screen.self_view.geometry())
        assert all(not r.intersects(o) for o in rects[i + 1 :])
    QTest.mouseClick(screen.tiles["id-Cy"], Qt.MouseButton.LeftButton)
    assert screen.pinned == "id-Cy"
    areas = {p: t.width() * t.height() for p, t in screen.tiles.items()}
    assert max(areas, key=lambda p: areas[p]) == "id-Cy"
    QTest.mouseClick(screen.toolbar.code_button, Qt.MouseButton.LeftButton)
    assert screen.tiles["id-Ana"].code_label.isVisible()
    assert "1234 5678 9012" in screen.tiles["id-Ana"].code_label.text()


def test_ringing_accept_and_decline(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    run(qloop, h.app.call.join_text("10.0.0.7:9000"))
    screen = window.call_screen
    assert (
        "Waiting for a call. Your id is self-id-123456." in screen.invite_panel.title_label.text()
    )
    h.session.ring("p", "Ana")
    panel = screen.ringing_panel
    assert panel.isVisible()
    assert panel.caller_label.text() == "Ana is calling you"
    assert screen.status_label.text() == "Ana is calling you."
    # The ring plays on the speaker the call plays on, until answered.
    qloop.run_until_complete(until(lambda: h.speaker.open_now))
    assert h.speaker.played == [("ring", h.app.call.options.speaker)]
    assert h.app.sounds.playing == "ring"
    QTest.mouseClick(panel.accept_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: not panel.isVisible()))
    assert screen.status_label.text() == "In a call with Ana."
    qloop.run_until_complete(until(lambda: not h.speaker.open_now))
    assert h.app.sounds.playing == ""
    h.session.ring("q", "Cy")
    assert panel.caller_label.text() == "Cy is calling you"
    assert h.app.sounds.playing == "ring"
    QTest.mouseClick(panel.decline_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: ("decline", None) in h.session.calls))
    assert not panel.isVisible()
    qloop.run_until_complete(until(lambda: not h.speaker.open_now))
    assert [name for name, _ in h.speaker.played] == ["ring", "ring"]


def test_lobby_test_sound_plays_on_the_picked_speaker_and_says_so(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    lobby = window.lobby
    QTest.mouseClick(lobby.test_sound_button, Qt.MouseButton.LeftButton)
    assert lobby.speaker_status.text() == "Playing a test sound…"
    qloop.run_until_complete(until(lambda: "three rising notes" in lobby.speaker_status.text()))
    assert h.speaker.played == [("test sound", None)]
    assert not h.speaker.open_now
    # A speaker that cannot play says so in the call's own words, and picking
    # another clears the old sentence.
    h.speaker.fail = "No speaker found: the others will not be heard. Plug one in."
    QTest.mouseClick(lobby.test_sound_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: "No speaker found" in lobby.speaker_status.text()))
    assert "three rising notes" not in lobby.speaker_status.text()
    assert not looks_technical(lobby.speaker_status.text())
    lobby.speaker_combo.setCurrentIndex(lobby.speaker_combo.count() - 1)
    lobby.speaker_combo.currentTextChanged.emit(lobby.speaker_combo.currentText())
    assert not lobby.speaker_status.isVisible()


def test_a_ring_without_a_speaker_falls_back_to_the_desktop_bell(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    from callapp.ui.models.sounds import SoundsModel
    from tests.ui.fakes import FakeSpeaker

    beeps: list[float] = []
    sounds = SoundsModel(FakeSpeaker(fail="No speaker found."), beep=lambda: beeps.append(1.0))

    async def ring_a_while() -> None:
        sounds.ring(None)
        await until(lambda: len(beeps) >= 1)
        sounds.stop()
        await asyncio.sleep(0)

    run(qloop, ring_a_while())
    assert beeps
    assert sounds.playing == ""
    count = len(beeps)
    run(qloop, asyncio.sleep(0.05))
    assert len(beeps) == count  # stopped ringing means stopped beeping


def test_chat_send_receive_and_unread_badge(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    session = in_call(h, qloop, "Ana")
    screen = window.call_screen
    session.receive_chat("id-Ana", "Ana", "hello there")
    assert screen.toolbar.chat_button.text() == "Chat (1)"
    QTest.mouseClick(screen.toolbar.chat_button, Qt.MouseButton.LeftButton)
    assert screen.chat_panel.isVisible()
    assert screen.toolbar.chat_button.text() == "Chat"
    assert "hello there" in screen.chat_panel.history.toPlainText()
    QTest.keyClicks(screen.chat_panel.input, "hi Ana")
    QTest.keyClick(screen.chat_panel.input, Qt.Key.Key_Return)
    qloop.run_until_complete(until(lambda: ("send_chat", "hi Ana") in session.calls))
    qloop.run_until_complete(until(lambda: "You" in screen.chat_panel.history.toPlainText()))
    assert "hi Ana" in screen.chat_panel.history.toPlainText()


def test_sharing_muting_and_camera_say_what_the_button_will_do(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    in_call(h, qloop, "Ana")
    tb = window.call_screen.toolbar
    for button, before, after in (
        (tb.share_button, "Share screen", "Stop sharing"),
        (tb.mute_button, "Mute", "Unmute"),
        (tb.camera_button, "Stop camera", "Start camera"),
    ):
        assert button.text() == before
        QTest.mouseClick(button, Qt.MouseButton.LeftButton)
        qloop.run_until_complete(until(lambda b=button, a=after: b.text() == a))  # type: ignore[misc]
        assert button.accessibleName() == after
    assert h.session.snapshot.screen_sharing
    assert window.call_screen.self_view.placeholder == "Camera off"


def test_reconnecting_shows_a_countdown_and_cancel_hangs_up(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    session = in_call(h, qloop, "Ana")
    if "reconnect_deadline" in SessionSnapshot.__dataclass_fields__:
        session.reconnecting(reconnect_deadline=time.monotonic() + 20)
        expected = "Trying to reconnect for"
    else:  # the engine has not grown the deadline yet: no countdown, still a Cancel
        session.reconnecting()
        expected = "Trying to reconnect"
    screen = window.call_screen
    assert screen.reconnect_bar.isVisible()
    assert expected in screen.reconnect_label.text()
    assert "reconnecting" in screen.status_label.text()
    QTest.mouseClick(screen.cancel_reconnect_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: h.app.call.screen is Screen.LOBBY))
    assert window.current_screen() is window.lobby
    assert session.closed


def test_the_server_gone_and_the_host_gone_are_said_in_the_lobby(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    in_call(h, qloop, "Ana").gone()
    qloop.run_until_complete(until(lambda: window.current_screen() is window.lobby))
    assert window.lobby.banner.isVisible()
    assert window.lobby.banner.text().startswith("The server went away")
    if hasattr(EndReason, "HOST_LEFT"):
        in_call(h, qloop, "Host").leaves("id-Host", EndReason["HOST_LEFT"])
        qloop.run_until_complete(until(lambda: window.current_screen() is window.lobby))
        assert window.lobby.banner.text() == "The host ended the call."


def test_a_full_room_and_every_join_error_in_the_lobby_banner(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    h = Harness(full_rooms=frozenset({"team"}))
    window = make_window(qtbot, h)
    for text, words in (
        ("10.0.0.7:9000/team", "This call is full. Ask the host to make room"),
        ("ws//10.0.0.7:9000/ws/team", "This call is full"),
        ("ftp://x", "starts with http://"),
        ("http://h:1/?room=x#secret=nope", "secret"),
        ("", "Paste the invite link"),
    ):
        window.lobby.join_edit.setText(text)
        QTest.mouseClick(window.lobby.join_button, Qt.MouseButton.LeftButton)
        qloop.run_until_complete(until(lambda: not h.app.busy and bool(h.app.error)))
        assert words in window.lobby.banner.text(), (text, window.lobby.banner.text())
        assert window.lobby.banner.isVisible()
        assert window.current_screen() is window.lobby
        assert not looks_technical(window.lobby.banner.text())
    h.session_kw = {"unreachable": True}
    window.lobby.join_edit.setText("192.0.2.99:19502/x")
    QTest.mouseClick(window.lobby.join_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: not h.app.busy and "reach" in h.app.error))
    assert "('192.0.2.99', 19502)" not in window.lobby.banner.text()
    run(qloop, h.app.shutdown())


def test_no_text_shown_anywhere_looks_technical(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    h = Harness()
    window = make_window(qtbot, h)
    seen: list[str] = []
    seen += shown_texts(window)
    run(qloop, h.app.call.host(""))
    seen += shown_texts(window)
    s = h.session
    s.add_peer("a", "Ana")
    s.add_peer("b", "Bo", muted=True)
    s.add_peer("c", None, state=LegState.CONNECTING)
    s.receive_chat("a", "Ana", "hi")
    run(qloop, h.app.chat.send(""))
    seen += shown_texts(window)
    s.leaves("b", EndReason.PEER_UNREACHABLE)
    s.leaves("c", EndReason.INSECURE)
    s.ring("d", "Di")
    s.reconnecting()
    seen += shown_texts(window)
    run(qloop, h.app.call.hang_up())
    for text in ("ftp://x", "h:99999/x", "http://h:1/?room=x#secret=zz"):
        run(qloop, h.app.call.join_text(text))
        seen += shown_texts(window)
    h.session_kw = {"unreachable": True}
    run(qloop, h.app.call.join_text("192.0.2.99:19502/x"))
    seen += shown_texts(window)
    assert len(seen) > 40
    bad = [text for text in seen if looks_technical(text) or "Error:" in text]
    assert bad == []
    run(qloop, h.app.shutdown())


def _interactive(root: QWidget) -> list[QWidget]:
    kinds = (QAbstractButton, QLineEdit, QComboBox, QAbstractSlider, QTextEdit)
    found = [w for w in root.findChildren(QWidget) if isinstance(w, kinds) and w.isVisible()]
    # A combo's own line edit and a text area's scroll bars belong to a named control.
    return [
        w
        for w in found
        if not isinstance(w.parentWidget(), QComboBox) and not isinstance(w, QScrollBar)
    ]


def test_every_visible_control_of_both_screens_has_an_accessible_name(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    missing = [w.objectName() or type(w).__name__ for w in _interactive(window.lobby)]
    missing = [
        n
        for w, n in zip(_interactive(window.lobby), missing, strict=True)
        if not w.accessibleName()
    ]
    assert missing == []
    assert len(_interactive(window.lobby)) >= 7
    session = in_call(h, qloop, "Ana", "Bo")
    session.ring("r", "Cy")
    window.call_screen.set_chat_open(True)
    window.call_screen.reconnect_bar.setVisible(True)
    controls = _interactive(window.call_screen)
    assert len(controls) >= 12
    unnamed = [w.objectName() or type(w).__name__ for w in controls if not w.accessibleName()]
    assert unnamed == []
    for button in window.call_screen.toolbar.buttons():
        assert button.toolTip()
        assert button.accessibleDescription()


def test_every_shortcut_does_its_action(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    session = in_call(h, qloop, "Ana")
    for row in SHORTCUTS:
        assert window.actions_by_name[row.action].shortcut() == QKeySequence(row.keys[0])

    def press(action: Action) -> None:
        window.actions_by_name[action].shortcut()
        QTest.keySequence(
            window, QKeySequence(next(r.keys[0] for r in SHORTCUTS if r.action is action))
        )

    press(Action.MUTE)
    qloop.run_until_complete(until(lambda: session.snapshot.muted))
    press(Action.CAMERA)
    qloop.run_until_complete(until(lambda: not session.snapshot.video_enabled))
    press(Action.SHARE)
    qloop.run_until_complete(until(lambda: session.snapshot.screen_sharing))
    press(Action.CHAT)
    assert window.call_screen.chat_panel.isVisible()
    window.setFocus()
    press(Action.CHAT)
    assert not window.call_screen.chat_panel.isVisible()
    press(Action.CODE)
    assert window.call_screen.show_codes
    press(Action.HELP)
    assert window.help_overlay.isVisible()
    assert len(window.help_overlay.rows) == len(SHORTCUTS)
    QTest.keyClick(window.help_overlay, Qt.Key.Key_Escape)
    assert not window.help_overlay.isVisible()
    QTest.keyClick(window, Qt.Key.Key_F1)
    assert window.help_overlay.isVisible()
    window.help_overlay.hide_overlay()
    press(Action.FULL_SCREEN)
    qloop.run_until_complete(until(window.isFullScreen))
    press(Action.FULL_SCREEN)
    qloop.run_until_complete(until(lambda: not window.isFullScreen()))
    press(Action.HANG_UP)
    qloop.run_until_complete(until(lambda: window.current_screen() is window.lobby))


def test_double_click_on_the_video_goes_full_screen(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    in_call(h, qloop, "Ana")
    QTest.mouseDClick(window.call_screen.stage, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(window.isFullScreen))


def test_the_toolbar_hides_when_the_mouse_rests_and_comes_back_on_a_move(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    screen = window.call_screen
    screen.hide_after_ms = 100
    in_call(h, qloop, "Ana")
    QTest.mouseMove(screen.stage, screen.stage.rect().center())
    qloop.run_until_complete(until(lambda: not screen.toolbar.isVisible(), 10))
    QTest.mouseMove(screen.stage, screen.stage.rect().topLeft() + screen.stage.rect().center() / 2)
    qloop.run_until_complete(until(screen.toolbar.isVisible, 10))


def test_closing_during_a_call_asks_first(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    h = Harness()
    window = make_window(qtbot, h)
    in_call(h, qloop, "Ana")
    h.services.answer = False
    window.close()
    qloop.run_until_complete(until(lambda: h.services.questions == ["Leave the call?"]))
    assert not window.closed_cleanly
    assert h.app.call.screen is Screen.CALL
    h.services.answer = True
    window.close()
    qloop.run_until_complete(until(lambda: window.closed_cleanly, 10))
    assert h.session.closed


def test_preferences_from_the_lobby_apply_and_save(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    h.services.preferences = dataclasses.replace(
        window.settings, name="Zoe", width=1280, height=720
    )
    QTest.mouseClick(window.lobby.preferences_button, Qt.MouseButton.LeftButton)
    qloop.run_until_complete(until(lambda: h.app.options.name == "Zoe"))
    assert h.app.options.width == 1280
    assert window.lobby.name_edit.text() == "Zoe"


def test_tab_reaches_the_call_controls_first(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    """In a call, the first Tab lands on the toolbar, and Tab walks it in order."""
    in_call(h, qloop, "Bo")
    bar = window.call_screen.toolbar
    window.activateWindow()
    window.call_screen.setFocus()
    order = []
    for _ in range(7):
        QTest.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_Tab)
        order.append(QApplication.focusWidget())
    assert order[0] is bar.mute_button, order[0]
    expected = [bar.mute_button, bar.camera_button, bar.share_button, bar.chat_button]
    assert order[:4] == expected
    assert bar.hang_up_button in order
