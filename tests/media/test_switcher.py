from __future__ import annotations

import asyncio
import itertools

from aiortc import MediaStreamTrack
from av import VideoFrame

from callapp.media.switcher import SwitchableVideoTrack

from .conftest import FeedTrack, FlatTrack, flat_frame, grey_level, is_black, settle_until

BLACK = 16


async def test_switching_sources_keeps_pts_strictly_increasing() -> None:
    first, second = FlatTrack(100), FlatTrack(200, size=(48, 32))
    switcher = SwitchableVideoTrack(first, width=32, height=32, idle_fps=100)
    frames: list[VideoFrame] = [await switcher.recv() for _ in range(4)]
    assert switcher.set_source(second) is first
    assert first.readyState == "ended", "a replaced source is stopped"
    # The old source's unsent frame is dropped: the next one is the new source's.
    frames += [await switcher.recv() for _ in range(5)]
    switcher.set_source(None)
    frames += [await switcher.recv() for _ in range(3)]
    switcher.set_source(FlatTrack(60))
    frames += [await switcher.recv() for _ in range(5)]
    switcher.stop()

    levels = [grey_level(f) for f in frames]
    assert levels[:4] == [100] * 4
    assert levels[4:9] == [200] * 5, levels
    assert levels[9:12] == [BLACK] * 3, "no source: black"
    assert levels[-1] == 60
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts)), pts
    # Source pts (from 0 on each source) were shifted onto one timeline.
    assert frames[5].pts > frames[3].pts
    assert (frames[8].width, frames[8].height) == (48, 32)
    assert (frames[9].width, frames[9].height) == (48, 32), "black keeps the last size"


async def test_disabled_sends_black_then_the_source_again() -> None:
    source = FlatTrack(150)
    switcher = SwitchableVideoTrack(source, idle_fps=100)
    assert grey_level(await switcher.recv()) == 150
    switcher.enabled = False
    black = [await switcher.recv() for _ in range(3)]
    switcher.enabled = True
    after = await switcher.recv()
    switcher.stop()

    assert all(is_black(f) for f in black)
    assert grey_level(after) == 150
    assert source.readyState == "ended", "stopping the switcher stops its source"
    pts = [f.pts for f in [*black, after]]
    assert all(b > a for a, b in itertools.pairwise(pts)), pts


async def test_preview_tap_sees_frames_before_a_call_and_while_disabled() -> None:
    seen: list[VideoFrame | None] = []
    three = asyncio.Event()

    def on_preview(frame: VideoFrame | None) -> None:
        seen.append(frame)
        if len(seen) == 3:
            three.set()

    switcher = SwitchableVideoTrack(FlatTrack(90), on_preview=on_preview)
    switcher.enabled = False
    switcher.start()  # no recv(): no peer connection yet
    await three.wait()
    assert all(f is not None and grey_level(f) == 90 for f in seen)
    assert switcher.preview is seen[-1]
    switcher.set_source(None)
    assert seen[-1] is None, "no source: the self-view is told there is no picture"
    assert switcher.preview is None
    switcher.stop()


async def test_a_source_that_ends_is_reported_and_replaced_by_black() -> None:
    ended: list[MediaStreamTrack] = []
    source = FlatTrack(120, frames=2)
    switcher = SwitchableVideoTrack(source, idle_fps=100, on_source_ended=ended.append)
    levels = [grey_level(await switcher.recv()) for _ in range(2)]
    levels.append(grey_level(await switcher.recv()))
    switcher.stop()
    assert levels == [120, 120, BLACK]
    assert ended == [source]
    assert switcher.source is None


async def test_a_failing_camera_behind_the_switcher_keeps_the_stream_going() -> None:
    from callapp.media.camera import CameraState, CameraStatus, CameraTrack

    from .fakes import FakeCapture, Script, is_camera_frame

    statuses: list[CameraStatus] = []
    camera = CameraTrack(
        0,
        width=64,
        height=48,
        on_status=statuses.append,
        capture_factory=Script(FakeCapture(frames=5)),  # then no camera at all
        retry_delay=0.01,
        max_retry_delay=0.02,
    )
    switcher = SwitchableVideoTrack(camera, width=64, height=48)
    frames = [await switcher.recv()]
    while camera.status.state is not CameraState.FALLBACK:
        frames.append(await switcher.recv())
    frames += [await switcher.recv() for _ in range(3)]
    switcher.stop()

    assert is_camera_frame(frames[0])
    assert not any(is_camera_frame(f) for f in frames[-3:]), "the pattern took over"
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))
    assert camera.readyState == "ended"
    assert statuses[-1].state is CameraState.STOPPED


async def test_a_source_that_raises_is_treated_as_ended() -> None:
    class Broken(MediaStreamTrack):
        kind = "video"

        async def recv(self) -> VideoFrame:
            raise RuntimeError("driver bug")

    ended: list[MediaStreamTrack] = []
    source = Broken()
    switcher = SwitchableVideoTrack(source, idle_fps=100, on_source_ended=ended.append)
    frame = await switcher.recv()
    switcher.stop()
    assert grey_level(frame) == BLACK
    assert ended == [source]
    assert source.readyState == "ended"


async def test_a_frame_shown_to_the_preview_is_never_restamped() -> None:
    previews: list[VideoFrame | None] = []
    source = FeedTrack("video")
    switcher = SwitchableVideoTrack(source, on_preview=previews.append)
    # The same source stamp twice: the second must be sent one tick later.
    source.push(flat_frame(70, pts=0))
    first = await switcher.recv()
    source.push(flat_frame(71, pts=0))
    await settle_until(lambda: len(previews) == 2)
    second = await switcher.recv()
    switcher.stop()

    assert first is previews[0], "a frame whose stamp stands is sent as it is"
    assert second is not previews[1]
    assert second.pts == first.pts + 1
    shown = previews[1]
    assert shown is not None
    assert shown.pts == first.pts, "the preview's frame kept its stamp"
    assert grey_level(second) == 71
