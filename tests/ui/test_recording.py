"""Recording the call from the window: real frames from the fake session into a real file."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QWidget
from pytestqt.qtbot import QtBot

from callapp.call.state import EndReason
from callapp.media import recorder as recorder_module
from callapp.media.pcm import pcm_to_frame
from callapp.media.testpattern import PatternRenderer
from callapp.media.tone import ToneTrack
from callapp.ui.logic.shortcuts import Action, shortcut_for
from callapp.ui.logic.wording import looks_technical
from callapp.ui.models.call import Screen, with_video_suffix
from callapp.ui.services import QtUiServices
from callapp.ui.views.main_window import MainWindow
from tests.ui.fakes import FakeCallSession, until
from tests.ui.harness import Harness, make_window, run

VIDEO_FRAMES = 45
AUDIO_FRAMES = 90  # 20 ms each: 1.8 s


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


async def send_media(session: FakeCallSession, *peers: str) -> None:
    """Each peer sends a test pattern (30 fps) and a tone (20 ms frames), as decoded frames."""
    pictures = PatternRenderer(320, 240)
    tones = {peer: ToneTrack(440.0 + 110 * i) for i, peer in enumerate(peers)}
    for index in range(AUDIO_FRAMES):
        for peer in peers:
            if index < VIDEO_FRAMES:
                picture = pictures.render(index, index / 30, 0.0)
                picture.pts = index * 3000
                picture.time_base = Fraction(1, 90_000)
                session.frame(peer, picture)
            sound = pcm_to_frame(tones[peer].generate(960, 0), index * 960)
            session.audio(peer, sound)
        await asyncio.sleep(0.02)


def count_frames(path: Path) -> dict[str, int]:
    counts = {"video": 0, "audio": 0}
    with av.open(str(path)) as container:
        assert container.streams.video, "no video stream"
        assert container.streams.audio, "no audio stream"
        for packet in container.demux():
            for decoded in packet.decode():
                kind = "video" if isinstance(decoded, av.VideoFrame) else "audio"
                counts[kind] += 1
    return counts


def press(window: MainWindow, action: Action) -> None:
    QTest.keySequence(window, QKeySequence(shortcut_for(action).keys[0]))


def recording_calls(session: FakeCallSession) -> list[Any]:
    return [value for name, value in session.calls if name == "set_recording"]


def test_record_from_the_menu_saves_a_playable_file_and_tells_the_others(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    session = in_call(h, qloop, "Bo")
    screen = window.call_screen
    target = tmp_path / "our call.mp4"
    h.services.save_files = [str(target)]
    assert not screen.recording_label.isVisible()
    screen.toolbar.record_action.trigger()  # More → Record
    qloop.run_until_complete(until(lambda: h.app.call.recording, 20))
    title, start = h.services.save_requests[0]
    assert title == "Save the recording"
    assert start.endswith(".mp4")
    assert screen.recording_label.isVisible()
    assert screen.recording_label.text() == "● Recording"
    assert "the others are told" in screen.recording_label.accessibleName()
    assert "Stop recording" in screen.toolbar.record_action.text()
    qloop.run_until_complete(until(lambda: recording_calls(session) == [True], 20))
    assert session.snapshot.recording

    run(qloop, send_media(session, "id-Bo"))
    press(window, Action.RECORD)  # Stop recording, by its shortcut
    qloop.run_until_complete(until(lambda: not h.app.call.recording, 20))
    qloop.run_until_complete(until(lambda: "saved" in h.app.call.message, 60))
    assert h.app.call.message == "The recording is saved as “our call.mp4”."
    assert not screen.recording_label.isVisible()
    assert recording_calls(session) == [True, False]
    assert not session.snapshot.recording
    assert h.app.call.screen is Screen.CALL  # the call goes on
    counts = count_frames(target)
    assert 0 < counts["video"] <= VIDEO_FRAMES
    assert counts["audio"] > 0


def recorded(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """The recording's pictures (luma planes) and its sound (mono float samples, 48 kHz)."""
    pictures: list[np.ndarray] = []
    sound: list[np.ndarray] = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=48_000)
        for packet in container.demux():
            for decoded in packet.decode():
                if isinstance(decoded, av.VideoFrame):
                    pictures.append(decoded.to_ndarray(format="gray"))
                else:
                    for out in resampler.resample(decoded):
                        sound.append(out.to_ndarray().reshape(-1))
    return pictures, np.concatenate(sound) if sound else np.zeros(0)


def loudest_at(sound: np.ndarray, hz: float) -> float:
    """The spectrum's magnitude near ``hz`` over its median: a tone stands far above 1."""
    spectrum = np.abs(np.fft.rfft(sound * np.hanning(len(sound))))
    bins = np.fft.rfftfreq(len(sound), 1 / 48_000)
    near = spectrum[(bins > hz - 5) & (bins < hz + 5)]
    return float(near.max() / np.median(spectrum))


def test_a_group_records_everyones_picture_and_sound(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    session = in_call(h, qloop, "Ana", "Bo")
    target = tmp_path / "group"
    h.services.save_files = [str(target)]
    press(window, Action.RECORD)
    qloop.run_until_complete(until(lambda: h.app.call.recording, 20))
    assert h.app.call.recording_path == str(target) + ".mp4"
    run(qloop, send_media(session, "id-Ana", "id-Bo"))
    run(qloop, h.app.call.stop_recording())
    pictures, sound = recorded(tmp_path / "group.mp4")
    assert pictures, "no video"
    last = pictures[-1]
    assert last.shape == (720, 1280)
    # Side by side, as on the call screen: a test pattern in each half.
    half = last.shape[1] // 2
    for side in (last[:, :half], last[:, half:]):
        assert side.std() > 20, "a picture in each half, not black"
    # Both voices: Ana's 440 Hz tone and Bo's 550 Hz.
    assert len(sound) > 48_000 // 2
    assert loudest_at(sound, 440.0) > 50
    assert loudest_at(sound, 550.0) > 50


def test_someone_who_leaves_leaves_the_recordings_picture(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    session = in_call(h, qloop, "Ana", "Bo")
    h.services.save_files = [str(tmp_path / "left.mkv")]
    run(qloop, h.app.call.start_recording())
    run(qloop, send_media(session, "id-Ana", "id-Bo"))
    session.leaves("id-Bo", EndReason.HUNG_UP)
    run(qloop, send_media(session, "id-Ana"))
    run(qloop, h.app.call.stop_recording())
    pictures, _ = recorded(tmp_path / "left.mkv")
    last = pictures[-1]
    # Ana alone, in the middle: the canvas's sides are black bars.
    assert last[:, :100].std() < 2
    assert last[:, -100:].std() < 2
    assert last[:, 500:780].std() > 20


def test_hanging_up_finishes_the_recording(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    session = in_call(h, qloop, "Bo")
    target = tmp_path / "call.mkv"
    h.services.save_files = [str(target)]
    run(qloop, h.app.call.start_recording())
    assert h.app.call.recording
    run(qloop, send_media(session, "id-Bo"))
    run(qloop, h.app.call.hang_up())
    assert window.current_screen() is window.lobby
    assert not h.app.call.recording
    assert recording_calls(session) == [True, False]
    names = [name for name, _ in session.calls]
    assert names.index("hang_up") > len(names) - 1 - names[::-1].index("set_recording")
    assert "The recording is saved as “call.mkv”." in window.lobby.banner.text()
    counts = count_frames(target)
    assert counts["video"] > 0
    assert counts["audio"] > 0


def test_the_last_peer_leaving_ends_the_recording(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    session = in_call(h, qloop, "Bo")
    h.services.save_files = [str(tmp_path / "x.mp4")]
    run(qloop, h.app.call.start_recording())
    run(qloop, send_media(session, "id-Bo"))
    session.leaves("id-Bo", EndReason.HUNG_UP)
    qloop.run_until_complete(until(lambda: "saved" in h.app.call.message, 60))
    assert not window.call_screen.recording_label.isVisible()
    assert recording_calls(session) == [True, False]
    assert count_frames(tmp_path / "x.mp4")["video"] > 0


def test_an_unwritable_place_is_said_in_plain_words_and_the_call_goes_on(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    session = in_call(h, qloop, "Bo")
    h.services.save_files = [str(tmp_path / "no such folder" / "call.mp4")]
    press(window, Action.RECORD)
    qloop.run_until_complete(until(lambda: h.app.call.message != "", 20))
    text = window.call_screen.banner.text()
    assert text == (
        "The recording could not start: that folder does not exist or cannot be written to."
        " Choose another place to save it."
    )
    assert not looks_technical(text)
    assert str(tmp_path) not in text
    assert not h.app.call.recording
    assert not window.call_screen.recording_label.isVisible()
    assert recording_calls(session) == []
    assert h.app.call.screen is Screen.CALL
    assert h.app.call.snapshot.in_call


def test_a_full_disk_mid_call_stops_the_recording_in_plain_words(
    window: MainWindow,
    h: Harness,
    qloop: asyncio.AbstractEventLoop,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = in_call(h, qloop, "Bo")
    h.services.save_files = [str(tmp_path / "call.mp4")]
    run(qloop, h.app.call.start_recording())

    def full(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recorder_module.Recorder, "_encode", full)
    run(qloop, send_media(session, "id-Bo"))
    qloop.run_until_complete(until(lambda: not h.app.call.recording, 30))
    qloop.run_until_complete(until(lambda: h.app.call.message != "", 30))
    text = h.app.call.message
    assert text == "The recording stopped: the disk is full. The call goes on."
    assert not looks_technical(text)
    assert recording_calls(session) == [True, False]
    assert h.app.call.screen is Screen.CALL
    assert h.app.call.snapshot.in_call


def test_recording_needs_someone_in_the_call_and_a_cancelled_dialog_does_nothing(
    window: MainWindow, h: Harness, qloop: asyncio.AbstractEventLoop
) -> None:
    run(qloop, h.app.call.join_text("10.0.0.7:9000/team"))
    run(qloop, h.app.call.start_recording())
    assert h.app.call.message == "Recording starts once someone else is in the call."
    assert h.services.save_requests == []
    h.session.add_peer("id-Bo", "Bo")
    run(qloop, h.app.call.start_recording())  # the dialog is cancelled
    assert len(h.services.save_requests) == 1
    assert not h.app.call.recording
    assert recording_calls(h.session) == []


def test_a_name_without_a_video_ending_gets_mp4() -> None:
    assert with_video_suffix("/x/call") == "/x/call.mp4"
    assert with_video_suffix("/x/call.webm") == "/x/call.webm"
    assert with_video_suffix("/x/call.MKV") == "/x/call.MKV"
    assert with_video_suffix("/x/notes.txt") == "/x/notes.txt.mp4"


def test_the_real_save_dialog_asks_for_a_video_file(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    parent = QWidget()
    qtbot.addWidget(parent)
    services = QtUiServices(parent)
    start = str(tmp_path / "Call 2026-01-01 10.00.mp4")

    async def answer() -> str | None:
        asking = asyncio.ensure_future(services.choose_save_file("Save the recording", start))
        await until(lambda: parent.findChild(QFileDialog, "saveFileDialog") is not None)
        dialog = parent.findChild(QFileDialog, "saveFileDialog")
        assert dialog is not None
        assert dialog.acceptMode() is QFileDialog.AcceptMode.AcceptSave
        assert dialog.windowTitle() == "Save the recording"
        dialog.accept()
        return await asking

    chosen = run(qloop, answer())
    assert chosen == start
