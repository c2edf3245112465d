"""What screen readers are told: the status line, banners and an incoming call, as events."""

from __future__ import annotations

import asyncio

import pytest
from PySide6.QtGui import QAccessible, QAccessibleEvent
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from callapp.ui.views import announce as announce_module
from tests.ui.harness import Harness, make_window, run

Heard = list[tuple[QWidget, QAccessible.Event, str]]


@pytest.fixture
def heard(monkeypatch: pytest.MonkeyPatch) -> Heard:
    events: Heard = []

    def record(event: QAccessibleEvent) -> None:
        widget = event.object()
        assert isinstance(widget, QWidget)
        events.append((widget, event.type(), widget.accessibleDescription()))

    monkeypatch.setattr(announce_module, "_send", record)
    return events


def test_status_banner_and_ringing_are_announced(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, heard: Heard
) -> None:
    h = Harness(full_rooms=frozenset({"team"}))
    window = make_window(qtbot, h)
    run(qloop, h.app.call.join_text("10.0.0.7:9000/team"))  # full: said in the lobby
    assert any(
        widget is window.lobby.banner
        and kind is QAccessible.Event.Alert
        and "This call is full" in text
        for widget, kind, text in heard
    ), heard

    heard.clear()
    run(qloop, h.app.call.join_text("10.0.0.7:9000"))
    h.session.ring("p", "Ana")
    screen = window.call_screen
    assert (screen.ringing_panel, QAccessible.Event.Alert, "Ana is calling you") in heard
    assert (screen.status_label, QAccessible.Event.NameChanged, "Ana is calling you.") in heard
    run(qloop, h.app.shutdown())


def test_a_cleared_banner_is_not_news(qtbot: QtBot, heard: Heard) -> None:
    widget = QWidget()
    qtbot.addWidget(widget)
    announce_module.announce(widget, "")
    assert heard == []
    announce_module.announce(widget, "The host ended the call.", urgent=True)
    assert heard == [(widget, QAccessible.Event.Alert, "The host ended the call.")]
