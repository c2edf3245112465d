"""The call engine's glue to callapp.media: sources, the frame feed, recording."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import numpy as np
import pytest

from callapp.call import errors
from callapp.call.recording import CallRecording, FrameFeed
from callapp.call.sources import open_source
from callapp.call.state import CallPhase

from .conftest import Sessions, make_config, wait_phase


def frame(index: int, width: int = 320, height: int = 240) -> av.VideoFrame:
    data = np.full((height, width, 3), index % 255, np.uint8)
    out = av.VideoFrame.from_ndarray(data, format="rgb24").reformat(format="yuv420p")
    out.pts = index * 3000
    return out


async def test_test_pattern_has_the_configured_size() -> None:
    track = open_source(make_config(video="test", width=320, height=240))
    try:
        first = await track.recv()
        assert isinstance(first, av.VideoFrame)
        assert (first.width, first.height) == (320, 240)
    finally:
        track.stop()


def test_a_missing_file_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(errors.MediaError):
        open_source(make_config(video=str(tmp_path / "missing.mp4")))


async def test_a_session_with_a_missing_file_sends_the_pattern_and_says_so(
    sessions: Sessions, tmp_path: Path
) -> None:
    a = await sessions(video=str(tmp_path / "missing.mp4"))
    assert a.snapshot.phase is CallPhase.WAITING
    assert a.snapshot.notice is not None
    assert "test pattern" in a.snapshot.notice
    b = await sessions()
    await a.join_room("m")
    await b.join_room("m")
    await wait_phase(b, CallPhase.CONNECTED)


async def test_feed_keeps_the_newest_frames() -> None:
    feed = FrameFeed(max_frames=2)
    for i in range(5):
        feed.push(frame(i))
    assert feed.dropped == 3
    assert (await feed.recv()).pts == 3 * 3000
    assert (await feed.recv()).pts == 4 * 3000
    feed.stop()


async def test_recording_writes_a_file_pyav_reads(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    recording = CallRecording(path)
    for i in range(20):
        recording.write(frame(i))
        await _tick()
    await recording.close()
    assert recording.frames_written >= 10
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == recording.frames_written


def test_recording_to_a_missing_folder_fails_early(tmp_path: Path) -> None:
    with pytest.raises(errors.MediaError):
        CallRecording(tmp_path / "no" / "such" / "folder.mp4")


async def _tick() -> None:
    await asyncio.sleep(0.01)
