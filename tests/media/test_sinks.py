from __future__ import annotations

import asyncio
import time

import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from callapp.media.sinks import LatestFrameSink

from .conftest import FlatTrack, grey_level


class ScriptedTrack(MediaStreamTrack):
    """Returns the given frames at once, then raises ``end``."""

    kind = "video"

    def __init__(self, frames: list[VideoFrame], end: BaseException) -> None:
        super().__init__()
        self.frames = list(frames)
        self.end = end

    async def recv(self) -> VideoFrame:
        await asyncio.sleep(0)
        if self.frames:
            return self.frames.pop(0)
        raise self.end


def flat(grey: int) -> VideoFrame:
    from callapp.media.frames import black_frame, plane_views

    frame = black_frame(16, 16)
    plane_views(frame)[0].fill(grey)
    return frame


async def test_counts_frames_keeps_the_latest_and_ends_with_the_track() -> None:
    frames = [flat(g) for g in (30, 60, 90)]
    seen: list[int] = []
    ended: list[BaseException | None] = []
    sink = LatestFrameSink(
        ScriptedTrack(frames, MediaStreamError()),
        on_frame=lambda f: seen.append(grey_level(f)),
        on_ended=ended.append,
    )
    assert (sink.frames, sink.size, sink.first_frame_at, sink.last_frame_at) == (0,) + (None,) * 3
    started = time.monotonic()
    sink.start()
    await sink.wait_ended()
    assert sink.frames == 3
    assert sink.size == (16, 16)
    assert sink.first_frame_at is not None
    assert sink.last_frame_at is not None
    assert started <= sink.first_frame_at <= sink.last_frame_at <= time.monotonic()
    assert sink.latest is frames[-1]
    assert seen == [30, 60, 90], "one callback per frame, in order"
    assert ended == [None], "a normal end"
    assert sink.error is None
    assert not sink.running


async def test_an_unexpected_error_surfaces() -> None:
    boom = RuntimeError("decoder exploded")
    ended: list[BaseException | None] = []
    sink = LatestFrameSink(ScriptedTrack([flat(40)], boom), on_ended=ended.append)
    sink.start()
    await sink.wait_ended()
    assert sink.error is boom
    assert ended == [boom]
    assert sink.frames == 1


async def test_a_failing_callback_does_not_stop_the_sink(caplog: pytest.LogCaptureFixture) -> None:
    def bad(frame: VideoFrame) -> None:
        raise ValueError("paint failed")

    sink = LatestFrameSink(ScriptedTrack([flat(1), flat(2)], MediaStreamError()), on_frame=bad)
    sink.start()
    await sink.wait_ended()
    assert sink.frames == 2
    assert "on_frame callback failed" in caplog.text


async def test_stop_leaves_the_track_running_and_ends_the_task() -> None:
    track = FlatTrack(70)
    sink = LatestFrameSink(track)
    sink.start()
    while sink.frames < 2:  # noqa: ASYNC110 (polling a counter the sink owns)
        await asyncio.sleep(0.005)
    await sink.stop()
    assert not sink.running
    assert track.readyState == "live"
    await sink.wait_ended()  # returns at once, raises nothing
    assert sink.latest is not None
    assert grey_level(sink.latest) == 70
    track.stop()


async def test_ends_when_a_live_track_is_stopped() -> None:
    track = FlatTrack(70)
    ended = asyncio.Event()
    sink = LatestFrameSink(track, on_ended=lambda error: ended.set())
    sink.start()
    await asyncio.sleep(0.03)
    track.stop()
    await ended.wait()
    assert sink.error is None


class PacedTrack(MediaStreamTrack):
    """Returns one frame after each of the given pauses (s), then ends."""

    kind = "video"

    def __init__(self, pauses: list[float]) -> None:
        super().__init__()
        self.pauses = list(pauses)

    async def recv(self) -> VideoFrame:
        if not self.pauses:
            raise MediaStreamError()
        await asyncio.sleep(self.pauses.pop(0))
        return flat(50)


async def test_gaps_while_the_sender_says_its_camera_is_off_are_no_freezes() -> None:
    # Frame:   1    2     3 (freeze)  4 (off)  5 (off)  6 (back on)  7     8 (freeze)
    pauses = [0.0, 0.01, 0.3, 0.3, 0.3, 0.3, 0.01, 0.3]
    sink: LatestFrameSink

    def on_frame(_frame: VideoFrame) -> None:
        if sink.frames == 3:
            sink.still = True  # the peer's presence: camera off
        elif sink.frames == 5:
            sink.still = False

    sink = LatestFrameSink(PacedTrack(pauses), on_frame=on_frame)
    sink.start()
    await sink.wait_ended()
    assert sink.frames == 8
    # Frames 3 and 8 came after freezes; 4 and 5 while still, 6 right after it.
    assert sink.freezes == 2
    assert 0.55 < sink.frozen_seconds < 1.2


async def test_a_sink_resumes_counting_freezes_where_the_calls_last_one_stopped() -> None:
    before = LatestFrameSink(PacedTrack([0.0, 0.01, 0.25]))
    before.start()
    await before.wait_ended()
    assert before.freezes == 1
    await asyncio.sleep(0.3)  # the media path is down; a new connection follows
    after = LatestFrameSink(PacedTrack([0.0, 0.01]))
    after.resume(before)
    after.start()
    await after.wait_ended()
    assert after.frames == 2, "its own frames"
    assert after.freezes == 2, "the gap across the two connections is one more freeze"
    assert after.longest_gap >= 0.3
    assert after.frozen_seconds >= 0.25 + 0.3
