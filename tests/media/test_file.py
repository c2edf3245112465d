from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from aiortc.mediastreams import MediaStreamError

from callapp.media.file import FileTrack

from .clips import grey_of, write_clip
from .conftest import luma


async def test_plays_every_frame_in_order_and_loops_past_the_end(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=5, width=96, height=64, fps=50)
    track = FileTrack(clip)
    assert (track.width, track.height, track.fps) == (96, 64, 50.0)
    frames = [await track.recv() for _ in range(12)]
    track.stop()

    assert all((f.width, f.height, f.format.name) == (96, 64, "yuv420p") for f in frames)
    greys = [int(luma(f).mean().round()) for f in frames]
    assert greys == [grey_of(i % 5) for i in range(12)], "frames 0-4, then again from 0"
    assert track.loops >= 2
    steps = [b.pts - a.pts for a, b in itertools.pairwise(frames)]
    assert all(step > 0 and step % 1800 == 0 for step in steps), steps  # 90000 / 50


async def test_without_loop_the_track_ends_after_the_last_frame(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mkv", frames=3, width=32, height=32, fps=50)
    track = FileTrack(clip, loop=False)
    frames = [await track.recv() for _ in range(3)]
    with pytest.raises(MediaStreamError):
        await track.recv()
    assert track.readyState == "ended"
    assert track.error is None
    assert len(frames) == 3


async def test_stop_while_the_decoder_waits_for_room(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", frames=30, width=32, height=32)
    track = FileTrack(clip, buffer_frames=2)
    await track.recv()  # the thread now fills the queue and waits
    thread = track._decoder.thread
    track.stop()
    assert thread is not None
    assert not thread.is_alive()
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="video file not found"):
        FileTrack(tmp_path / "nope.mp4")


def test_a_file_that_is_not_video_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "notes.mp4"
    junk.write_text("not a video")
    with pytest.raises(ValueError, match="cannot open"):
        FileTrack(junk)


async def test_frames_in_other_pixel_formats_are_converted(tmp_path: Path) -> None:
    import av
    import numpy as np

    path = tmp_path / "rgb.mkv"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "bgr0"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 255, np.uint8), "rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    track = FileTrack(path)
    frame = await track.recv()
    track.stop()
    assert frame.format.name == "yuv420p"
    assert luma(frame).min() >= 230
