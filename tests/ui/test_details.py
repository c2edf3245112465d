"""The call details: the history logic without a window, then the panel and its shortcut."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QComboBox,
    QLineEdit,
    QScrollBar,
    QTextEdit,
    QWidget,
)
from pytestqt.qtbot import QtBot

from callapp.call.state import EndReason
from callapp.ui.logic.history import (
    MAX_SAMPLES,
    TIME_LABELS,
    WINDOW_SECONDS,
    Metric,
    StatsHistory,
    nice_ceiling,
)
from callapp.ui.logic.shortcuts import Action, shortcut_for
from callapp.ui.logic.wording import looks_technical
from callapp.ui.views.main_window import MainWindow
from tests.ui.fakes import FakeCallSession, stats
from tests.ui.harness import Harness, make_window, run

# -- the history, without a window ------------------------------------------------------


def test_the_history_keeps_only_the_last_minute() -> None:
    history = StatsHistory()
    for second in range(150):
        history.record(float(second), {"a": stats()})
    samples = history.get("a")
    assert samples is not None
    times = [s.at for s in samples.samples]
    assert times[-1] == 149.0
    assert times[0] >= 149.0 - WINDOW_SECONDS
    assert len(times) == WINDOW_SECONDS + 1


def test_the_history_is_bounded_however_fast_it_is_fed() -> None:
    history = StatsHistory()
    for tick in range(MAX_SAMPLES * 3):
        history.record(tick / 100, {"a": stats()})
    found = history.get("a")
    assert found is not None
    assert len(found) == MAX_SAMPLES


def test_the_history_is_per_peer_and_forgets_a_peer_who_left() -> None:
    history = StatsHistory()
    history.record(0.0, {"a": stats(rtt_ms=10.0), "b": stats(rtt_ms=200.0)})
    history.record(1.0, {"a": stats(rtt_ms=12.0), "b": stats(rtt_ms=210.0)})
    assert history.peers() == ["a", "b"]
    a, b = history.get("a"), history.get("b")
    assert a is not None
    assert b is not None
    assert [s.rtt_ms for s in a.samples] == [10.0, 12.0]
    assert [s.rtt_ms for s in b.samples] == [200.0, 210.0]
    # b is still in the call but had no numbers this time: its graph stays.
    history.record(2.0, {"a": stats()}, present=["a", "b"])
    assert history.peers() == ["a", "b"]
    # b left.
    history.record(3.0, {"a": stats()}, present=["a"])
    assert history.peers() == ["a"]
    assert history.get("b") is None
    assert history.charts("b")[0].lines[0].points == ()


def test_a_chart_says_its_scale_labels_and_latest_numbers() -> None:
    history = StatsHistory()
    history.record(
        100.0,
        {"a": stats(bitrate_received=600_000.0, bitrate_sent=400_000.0, rtt_ms=40.0)},
    )
    history.record(
        130.0,
        {"a": stats(bitrate_received=1_200_000.0, bitrate_sent=850_000.0, rtt_ms=80.0)},
    )
    bitrate, fps, rtt, loss = history.charts("a")
    assert [c.metric for c in (bitrate, fps, rtt, loss)] == list(Metric)
    assert bitrate.title == "Bitrate"
    assert bitrate.value_labels == ("0 kbit/s", "1.0 Mbit/s", "2.0 Mbit/s")
    assert bitrate.time_labels == TIME_LABELS == ("1 min ago", "30 s ago", "now")
    received, sent = bitrate.lines
    assert (received.label, sent.label) == ("Received", "Sent")
    assert received.points == ((0.5, 0.3), (1.0, 0.6))
    assert bitrate.text == "Bitrate: received 1.2 Mbit/s, sent 850 kbit/s"
    assert fps.value_labels == ("0 fps", "15 fps", "30 fps")
    assert fps.text == "Frame rate: received 30 fps, sent 30 fps"
    assert rtt.value_labels == ("0 ms", "50 ms", "100 ms")
    assert rtt.text == "Round trip: 80 ms"
    assert loss.title == "Packet loss"
    assert loss.value_labels[-1] == "5%"
    assert loss.text == "Packet loss: received 0%, sent 0%"
    summary = history.summary("a")
    assert summary.startswith("Receiving 1.2 Mbit/s at 30 fps, sending 850 kbit/s at 30 fps")
    assert "round trip 80 ms" in summary
    assert not looks_technical(summary)


def test_unknown_numbers_leave_gaps_not_zeros() -> None:
    history = StatsHistory()
    history.record(0.0, {"a": stats(rtt_ms=None, packet_loss=None, fps_received=float("nan"))})
    _, fps, rtt, _ = history.charts("a")
    assert rtt.lines[0].points == ()
    assert rtt.text == "Round trip: not known yet"
    assert fps.lines[0].points == ((1.0, 0.0),)
    assert "round trip unknown" in history.summary("a")


@pytest.mark.parametrize(
    ("value", "floor", "top"),
    [
        (0.0, 30, 30.0),
        (31, 30, 50.0),
        (1_200_000, 100_000, 2_000_000.0),
        (0.7, 5, 5.0),
        (101, 1, 200.0),
    ],
)
def test_scales_end_on_round_numbers(value: float, floor: float, top: float) -> None:
    assert nice_ceiling(value, floor) == top


# -- the panel -----------------------------------------------------------------------------


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def window(qtbot: QtBot, h: Harness, qloop: asyncio.AbstractEventLoop) -> Iterator[MainWindow]:
    win = make_window(qtbot, h)
    yield win
    run(qloop, h.app.shutdown())


def in_call(h: Harness, qloop: asyncio.AbstractEventLoop, *names: str) -> FakeCallSession:
    run(qloop, h.app.call.join_text("10.0.0.7:9000/team"))
    for name in names:
        h.session.add_peer(f"id-{name}", name)
    return h.session


def poll(h: Harness, qloop: asyncio.AbstractEventLoop, done: object) -> None:
    """One stats poll (what the model's one-second timer does), until ``done()``."""

    async def go() -> None:
        async with asyncio.timeout(20):
            while True:
                h.app.call._tick()
                await asyncio.sleep(0.05)
                if done():  # type: ignore[operator]
                    return

    run(qloop, go())


def test_the_panel_shows_a_graph_per_peer_as_the_numbers_change(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    session = in_call(h, qloop, "Ana", "Bo")
    screen = window.call_screen
    panel = screen.details_panel
    assert not screen.details_open
    screen.toolbar.details_action.trigger()  # More → Call details
    assert screen.details_open
    assert panel.isVisible()
    assert "Hide call details" in screen.toolbar.details_action.text()
    assert panel.empty_label.isVisible()
    poll(h, qloop, lambda: set(panel.sections) == {"id-Ana", "id-Bo"})
    assert not panel.empty_label.isVisible()
    bo = panel.sections["id-Bo"]
    assert "Bo" in bo.name_label.text()
    assert [view.chart.title for view in bo.charts if view.chart] == [
        "Bitrate",
        "Frame rate",
        "Round trip",
        "Packet loss",
    ]
    assert bo.charts[0].accessibleName() == "Bitrate graph for Bo"
    assert bo.charts[2].accessibleName() == "Round trip graph for Bo"
    assert "Receiving 1.2 Mbit/s" in bo.summary_label.text()
    assert bo.summary_label.accessibleName().startswith("Bo: Receiving 1.2 Mbit/s")

    session.peer_stats["id-Bo"] = stats(bitrate_received=3_400_000.0, rtt_ms=180.0)
    poll(h, qloop, lambda: "3.4 Mbit/s" in bo.summary_label.text())
    bitrate, _, rtt, _ = (view.chart for view in bo.charts)
    assert bitrate is not None
    assert rtt is not None
    assert bitrate.value_labels[-1] == "5.0 Mbit/s"
    assert rtt.text == "Round trip: 180 ms"
    assert bo.charts[2].accessibleDescription().startswith("Round trip: 180 ms")
    ana = panel.sections["id-Ana"]
    assert "Receiving 1.2 Mbit/s" in ana.summary_label.text()
    assert len(h.app.call.history.get("id-Bo") or ()) >= 2
    bo.charts[0].grab()  # paints without error
    texts = panel.texts()
    assert texts
    assert not [t for t in texts if looks_technical(t)]

    session.leaves("id-Bo", EndReason.HUNG_UP)
    poll(h, qloop, lambda: set(panel.sections) == {"id-Ana"})
    screen.toolbar.details_action.trigger()
    assert not panel.isVisible()


def test_the_details_shortcut_opens_and_closes_the_panel(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    in_call(h, qloop, "Ana")
    screen = window.call_screen
    keys = shortcut_for(Action.DETAILS).keys[0]
    assert window.actions_by_name[Action.DETAILS].shortcut() == QKeySequence(keys)
    QTest.keySequence(window, QKeySequence(keys))
    assert screen.details_panel.isVisible()
    poll(h, qloop, lambda: "id-Ana" in screen.details_panel.sections)
    close = screen.details_panel.close_button
    assert close.accessibleName() == "Close the call details"
    kinds = (QAbstractButton, QLineEdit, QComboBox, QAbstractSlider, QTextEdit)
    controls = [
        w
        for w in screen.details_panel.findChildren(QWidget)
        if isinstance(w, kinds) and w.isVisible() and not isinstance(w, QScrollBar)
    ]
    assert controls
    assert [w.objectName() for w in controls if not w.accessibleName()] == []
    for view in screen.details_panel.sections["id-Ana"].charts:
        assert view.accessibleName().endswith("graph for Ana")
        assert view.accessibleDescription()
    window.setFocus()
    QTest.keySequence(window, QKeySequence(keys))
    assert not screen.details_panel.isVisible()
    QTest.keySequence(window, QKeySequence(keys))
    assert screen.details_panel.isVisible()
    run(qloop, h.app.call.hang_up())
    assert window.current_screen() is window.lobby
    assert not screen.details_open


def test_details_and_chat_share_the_side_one_at_a_time(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    in_call(h, qloop, "Ana")
    screen = window.call_screen
    screen.set_chat_open(True)
    screen.set_details_open(True)
    assert screen.details_panel.isVisible()
    assert not screen.chat_panel.isVisible()
    assert not h.app.chat.panel_open
    screen.set_chat_open(True)
    assert screen.chat_panel.isVisible()
    assert not screen.details_open
