from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import av
import pytest
from aiortc import AudioStreamTrack, MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from callapp.media.frames import VIDEO_TIME_BASE
from callapp.media.recorder import Recorder, RecordingError
from callapp.media.testpattern import TestPatternTrack

from .conftest import FeedTrack, flat_frame, settle_until


def probe(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        info: dict[str, object] = {"streams": [s.type for s in container.streams]}
        video = container.streams.video[0]
        frames = list(container.decode(video))
        info["video_frames"] = len(frames)
        info["size"] = (frames[0].width, frames[0].height)
        info["video_pts"] = [f.pts for f in frames]
        if container.streams.audio:
            container.seek(0)
            info["audio_frames"] = sum(1 for _ in container.decode(container.streams.audio[0]))
    return info


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
async def test_records_a_test_pattern_that_pyav_can_play(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"call{suffix}"
    track = TestPatternTrack(320, 240, fps=30)
    recorder = Recorder(path)
    recorder.add_track(track)
    await recorder.start()
    await asyncio.sleep(1.0)
    await recorder.stop()
    assert track.readyState == "live", "the recorder does not stop the tracks it records"
    track.stop()

    info = probe(path)
    assert info["streams"] == ["video"]
    assert info["size"] == (320, 240)
    assert isinstance(info["video_frames"], int)
    assert info["video_frames"] > 0
    assert info["video_frames"] == recorder.frames_written["video"]
    pts = info["video_pts"]
    assert isinstance(pts, list)
    assert pts == sorted(pts)


async def test_records_audio_and_video_together(tmp_path: Path) -> None:
    path = tmp_path / "call.mp4"
    video, audio = TestPatternTrack(160, 120, fps=30), AudioStreamTrack()
    recorder = Recorder(path)
    recorder.add_track(video)
    recorder.add_track(audio)
    await recorder.start()
    await asyncio.sleep(0.5)
    await recorder.stop()
    video.stop()
    audio.stop()

    info = probe(path)
    assert sorted(info["streams"]) == ["audio", "video"]  # type: ignore[call-overload]
    assert info["size"] == (160, 120)
    assert isinstance(info["audio_frames"], int)
    assert info["audio_frames"] > 0


class BrokenTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames

    async def recv(self) -> VideoFrame:
        await asyncio.sleep(0.001)
        if self.frames == 0:
            raise RuntimeError("decoder exploded")
        self.frames -= 1
        return VideoFrame(64, 48, "yuv420p")  # no pts: stamped on arrival


async def test_a_track_error_surfaces_through_the_callback_and_stop(tmp_path: Path) -> None:
    reported: list[RecordingError] = []
    recorder = Recorder(tmp_path / "x.mp4", on_error=reported.append)
    recorder.add_track(BrokenTrack(frames=3))
    await recorder.start()
    while not reported:  # noqa: ASYNC110 (the callback is the thing under test)
        await asyncio.sleep(0.01)
    with pytest.raises(RecordingError, match="decoder exploded") as caught:
        await recorder.stop()
    assert reported == [caught.value]
    assert isinstance(caught.value.__cause__, RuntimeError)


async def test_an_encoder_error_surfaces(tmp_path: Path) -> None:
    failed = asyncio.Event()
    recorder = Recorder(
        tmp_path / "x.mp4",
        video_options={"preset": "no-such-preset"},
        on_error=lambda error: failed.set(),
    )
    recorder.add_track(TestPatternTrack(64, 48))
    await recorder.start()
    await failed.wait()  # at the first frame, on the writer thread
    with pytest.raises(RecordingError, match="encoding failed"):
        await recorder.stop()


def test_a_bad_path_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="cannot record"):
        Recorder(tmp_path / "missing-dir" / "x.mp4")
    with pytest.raises(RecordingError, match="cannot record"):
        Recorder(tmp_path / "x.no-such-format")


async def test_an_empty_recording_leaves_no_file(tmp_path: Path) -> None:
    class Ended(MediaStreamTrack):
        kind = "video"

        async def recv(self) -> VideoFrame:
            raise MediaStreamError

    path = tmp_path / "x.mp4"
    recorder = Recorder(path)
    recorder.add_track(Ended())
    await recorder.start()
    await asyncio.sleep(0.01)
    await recorder.stop()
    assert not path.exists()


class JumpingTrack(MediaStreamTrack):
    """30 fps frames whose pts jump back by an hour halfway (a restarted sender)."""

    kind = "video"

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.sent = 0
        self.frames = frames
        self.done = asyncio.Event()

    async def recv(self) -> VideoFrame:
        if self.sent == self.frames:
            self.done.set()
            raise MediaStreamError
        await asyncio.sleep(1 / 30)
        frame = VideoFrame(64, 48, "yuv420p")
        base = 3600 * 90000 if self.sent < self.frames // 2 else 0
        frame.pts, frame.time_base = base + self.sent * 3000, VIDEO_TIME_BASE
        self.sent += 1
        return frame


async def test_a_track_whose_clock_jumps_back_is_reanchored(tmp_path: Path) -> None:
    path = tmp_path / "x.mkv"
    recorder = Recorder(path)
    track = JumpingTrack(frames=20)
    recorder.add_track(track)
    await recorder.start()
    await track.done.wait()
    await recorder.stop()
    pts = probe(path)["video_pts"]
    assert isinstance(pts, list)
    assert len(pts) == 20
    # Without re-anchoring, the second half would be squeezed 1 ms apart.
    steps = [b - a for a, b in itertools.pairwise(pts)]
    assert min(steps) >= 20, steps  # Matroska counts milliseconds


async def test_recorded_video_frames_keep_their_own_stamps(tmp_path: Path) -> None:
    """Others hold the frames too (a fan-out's legs, the view): the recorder restamps a view."""
    source = FeedTrack("video")
    frames = [flat_frame(20 * i, pts=10**9 + 3000 * i, size=(64, 48)) for i in range(10)]
    path = tmp_path / "x.mkv"
    recorder = Recorder(path)
    recorder.add_track(source)
    await recorder.start()
    source.push(*frames)
    source.end()
    await settle_until(lambda: source.reads == 11)  # every frame, then the end
    await recorder.stop()

    assert [f.pts for f in frames] == [10**9 + 3000 * i for i in range(10)]
    assert all(f.time_base == VIDEO_TIME_BASE for f in frames)
    pts = probe(path)["video_pts"]
    assert isinstance(pts, list)
    assert len(pts) == 10
    assert pts[0] < 1000, "the file's own timeline starts at the first frame's arrival"
