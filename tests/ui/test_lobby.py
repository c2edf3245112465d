"""The lobby's self-preview and microphone level meter, the invite's QR code, and dialling
by connection id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
import segno
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from callapp.media.devices import AudioState, AudioStatus
from callapp.media.tone import SilenceTrack
from callapp.ui.models.devices import MediaTrack, meter_value
from callapp.ui.views.invite_panel import QR_BORDER, QR_SCALE, qr_image, qr_matrix
from callapp.ui.views.main_window import MainWindow
from tests.ui.fakes import until
from tests.ui.harness import Harness, make_window, run


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def window(qtbot: QtBot, h: Harness, qloop: asyncio.AbstractEventLoop) -> Iterator[MainWindow]:
    win = make_window(qtbot, h)
    yield win
    run(qloop, h.app.shutdown())


def use(window: MainWindow, video: str, audio: str) -> None:
    """Pick ``video`` and ``audio`` in the lobby, as a person would type them."""
    window.lobby.video_combo.set_spec(video)
    window.lobby.mic_combo.set_spec(audio)
    window.lobby.start_preview()


def test_the_preview_paints_the_test_pattern_and_stops_when_a_call_starts(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    preview = h.app.devices.preview
    use(window, "test", "none")
    view = window.lobby.preview_view
    assert view.accessibleName() == "Your camera preview"
    run(qloop, until(lambda: view.frames_painted >= 3, limit=30))
    assert preview.running
    assert window.lobby.mic_status.text() == "No microphone chosen"
    tracks = list(preview._tracks)
    run(qloop, h.app.call.join_text("10.0.0.7:9000/team"))
    assert window.current_screen() is window.call_screen
    assert not h.app.devices.preview.running
    assert all(getattr(t, "readyState", "ended") == "ended" for t in tracks)


def test_the_preview_comes_back_in_the_lobby_and_never_runs_during_a_call(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    preview = h.app.devices.preview
    use(window, "test", "none")
    run(qloop, h.app.call.join_text("10.0.0.7:9000/team"))
    window.lobby.start_preview()  # hidden: nothing opens
    preview.start("test", "none")  # a session holds the devices: nothing opens
    assert not preview.running
    run(qloop, h.app.call.hang_up())
    assert window.current_screen() is window.lobby
    run(qloop, until(lambda: preview.running, limit=30))
    frames = preview.frames
    run(qloop, until(lambda: preview.frames > frames, limit=30))


def test_a_launch_straight_into_a_call_opens_no_preview_until_the_lobby_comes_back(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    preview = h.app.devices.preview
    preview.stop()
    preview.held = True  # what the launcher sets for --host, --invite, --room, --to
    use(window, "test", "none")
    window.lobby.start_preview()
    assert not preview.running
    run(qloop, h.app.call.join_text("10.0.0.7:9000/team"))
    run(qloop, h.app.call.hang_up())
    assert window.current_screen() is window.lobby
    run(qloop, until(lambda: preview.running, limit=30))


def test_the_meter_moves_with_a_tone_and_falls_with_silence(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    meter = window.lobby.mic_meter
    assert meter.accessibleName() == "Microphone level"
    use(window, "test", "tone:440")  # the picker takes a test tone: the seam
    run(qloop, until(lambda: meter.value() > 50, limit=30))
    # A quarter-scale sine is about -15 dBFS RMS.
    assert -16 < h.app.devices.preview.level_dbfs < -14
    use(window, "test", "none")
    run(qloop, until(lambda: meter.value() == 0, limit=30))


def test_no_microphone_is_said_in_words(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    preview = h.app.devices.preview

    def no_mic(spec: str, on_status: Callable[[AudioStatus], None]) -> MediaTrack:
        on_status(AudioStatus(AudioState.FALLBACK, None, "No microphone found: silence"))
        return SilenceTrack()

    preview.audio_opener = no_mic
    use(window, "test", "mic")
    run(qloop, until(lambda: window.lobby.mic_status.isVisible(), limit=30))
    assert window.lobby.mic_status.text() == "No microphone found"
    assert meter_value(-120.0) == 0
    assert window.lobby.mic_meter.value() == 0


def test_a_file_that_cannot_be_opened_is_said_on_the_preview(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    use(window, "/nowhere/at/all.mp4", "none")
    assert window.lobby.preview_view.placeholder == "This camera or file cannot be shown"


def test_meter_value_spans_the_floor_to_full_scale() -> None:
    assert meter_value(-120) == 0
    assert meter_value(-60) == 0
    assert meter_value(-30) == 50
    assert meter_value(0) == 100
    assert meter_value(6) == 100


# -- the invite's QR code ------------------------------------------------------------------


def painted_modules(image: QImage, modules: int) -> list[list[bool]]:
    """Sample each module's centre inside the quiet zone: dark = True."""
    scale = image.width() // (modules + 2 * QR_BORDER)
    return [
        [
            QColor(
                image.pixel(
                    (x + QR_BORDER) * scale + scale // 2, (y + QR_BORDER) * scale + scale // 2
                )
            ).lightness()
            < 128
            for x in range(modules)
        ]
        for y in range(modules)
    ]


def test_the_qr_code_paints_segnos_matrix_for_the_link() -> None:
    link = "https://192.168.7.9:8765/?room=blue-fox-42#secret=" + "A" * 43 + "&pin=abc"
    matrix = qr_matrix(link)
    assert matrix == [[bool(m) for m in row] for row in segno.make(link, error="m").matrix]
    image = qr_image(link)
    side = (len(matrix) + 2 * QR_BORDER) * QR_SCALE
    assert (image.width(), image.height()) == (side, side)
    assert painted_modules(image, len(matrix)) == matrix
    # The quiet zone is white.
    assert QColor(image.pixel(1, 1)).lightness() > 200
    other = qr_image(link.replace("blue", "gray"))
    assert other != image


def test_hosting_shows_the_invite_as_a_qr_code(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    run(qloop, h.app.call.host(""))
    run(qloop, until(lambda: h.app.hosting is not None and not h.app.busy))
    hosting = h.app.hosting
    assert hosting is not None
    panel = window.call_screen.invite_panel
    assert panel.qr_label.isVisible()
    assert panel.qr_label.accessibleName() == "QR code of the invite link"
    image = panel.qr_label.pixmap().toImage()
    matrix = qr_matrix(hosting.invite)
    assert painted_modules(image, len(matrix)) == matrix


# -- dialling by connection id ----------------------------------------------------------------

PEER_ID = "Qm9fX2lzX2hlcmUh"


def test_a_connection_id_in_the_lobby_says_what_is_needed(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    window.lobby.join_edit.setText(PEER_ID)
    window.lobby.join_button.click()
    run(qloop, until(lambda: window.lobby.banner.isVisible() and not h.app.busy))
    assert "first connect to their server" in window.lobby.banner.text()
    assert window.current_screen() is window.lobby
    assert h.sessions == []


def test_a_connection_id_is_dialled_on_the_server_connected_to(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    run(qloop, h.app.call.join_text("10.0.0.7:9000"))  # connect and wait to be called
    session = h.session
    run(qloop, h.app.call.join_text(PEER_ID))
    assert ("dial", PEER_ID) in session.calls
    assert h.session is session  # the same connection, not a new one
    assert h.app.call.message == ""
    # In a call already: said in words, nothing dialled.
    run(qloop, h.app.call.join_text("Zm9vX2Jhcl9iYXox"))
    assert ("dial", "Zm9vX2Jhcl9iYXox") not in session.calls
    assert "Hang up first" in h.app.call.message
