from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from callapp.media.camera import (
    CameraInfo,
    CameraState,
    CameraStatus,
    CameraTrack,
    Capture,
    list_cameras,
    to_yuv420p,
)

from .conftest import luma
from .fakes import FakeCapture, Script, is_camera_frame

W, H = 64, 48
MISSING_DEVICE = 97  # no such /dev/video97, here or on a developer's laptop


def make_track(script: Script, statuses: list[CameraStatus], **kwargs: Any) -> CameraTrack:
    kwargs = {"width": W, "height": H, **kwargs}
    return CameraTrack(
        0,
        fps=30.0,
        on_status=statuses.append,
        capture_factory=script,
        retry_delay=0.01,
        max_retry_delay=0.02,
        **kwargs,
    )


async def test_missing_camera_falls_back_to_the_pattern_with_real_opencv() -> None:
    statuses: list[CameraStatus] = []
    no_camera = CameraStatus(
        CameraState.FALLBACK, MISSING_DEVICE, "No camera found: sending a test pattern instead"
    )
    track = CameraTrack(MISSING_DEVICE, width=W, height=H, on_status=statuses.append)
    frames = [await track.recv()]
    while no_camera not in statuses:
        frames.append(await track.recv())
    frames += [await track.recv() for _ in range(2)]
    thread = track._thread
    track.stop()

    assert all((f.width, f.height, f.format.name) == (W, H, "yuv420p") for f in frames)
    assert not any(is_camera_frame(f) for f in frames)
    assert statuses[-1].state is CameraState.STOPPED
    assert thread is not None
    assert not thread.is_alive(), "stop() joins the capture thread"
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_camera_that_fails_mid_stream_falls_back_then_recovers() -> None:
    # Opens and gives 5 frames, then read() fails; the next open fails; the
    # third open works again.
    script = Script(FakeCapture(frames=5, grey=200), FakeCapture(opened=False), FakeCapture())
    statuses: list[CameraStatus] = []
    # Ask for 128x96: the fake camera gives 64x48, and so must the pattern.
    track = make_track(script, statuses, width=128, height=96)

    kinds: list[str] = []
    pts: list[int] = []
    frames: list[VideoFrame] = []
    while "camera" not in kinds or "pattern" not in kinds or kinds[-1] != "camera":
        frame = await track.recv()
        kinds.append("camera" if is_camera_frame(frame) else "pattern")
        pts.append(frame.pts)
        frames.append(frame)
        assert len(kinds) < 500, kinds
    track.stop()

    assert kinds[0] == "camera"
    assert {(f.width, f.height) for f in frames} == {(W, H)}
    assert all(b > a for a, b in itertools.pairwise(pts)), "pts strictly increase"
    states = [s.state for s in statuses]
    assert states[0] is CameraState.STARTING
    assert states[-1] is CameraState.STOPPED
    # LIVE, FALLBACK and LIVE again, in this order.
    live = states.index(CameraState.LIVE)
    fallback = states.index(CameraState.FALLBACK, live)
    assert CameraState.LIVE in states[fallback:]
    assert "stopped sending video" in statuses[fallback].message
    assert len(script.opened) >= 3
    assert all(c.released for c in script.opened), "every capture is released"
    assert script.opened[0].props  # size and fps were requested


async def test_camera_that_hangs_in_read_is_replaced_by_the_pattern() -> None:
    unblock = threading.Event()
    statuses: list[CameraStatus] = []
    capture = FakeCapture(block=unblock, block_after=3)
    track = make_track(Script(capture), statuses, stall_timeout=0.1)
    while not is_camera_frame(await track.recv()):
        pass
    # After 3 frames read() hangs: the track notices and sends the pattern.
    while track.status.state is not CameraState.FALLBACK:
        await track.recv()
    assert "stopped responding" in track.status.message
    assert not is_camera_frame(await track.recv())

    unblock.set()
    while not is_camera_frame(await track.recv()):
        pass
    assert track.status.state is CameraState.LIVE
    track.stop()


async def test_slow_consumer_gets_the_newest_frame_not_the_next_one() -> None:
    script = Script(FakeCapture())
    track = make_track(script, [])
    first = await track.recv()
    # The thread keeps reading meanwhile.
    assert await asyncio.to_thread(script.opened[0].reached.wait, 10)
    frame = await track.recv()
    track.stop()
    assert is_camera_frame(first)
    assert is_camera_frame(frame)
    # Each fake read sleeps 2 ms, so the 20th frame was captured at least
    # 19 reads (34 ms = 3420 ticks) after the first; a FIFO would hand out
    # the second frame, about one read later.
    assert frame.pts - first.pts >= 19 * 0.002 * 90000


def test_list_cameras_reports_the_devices_that_open() -> None:
    present = {1, 3}

    def factory(index: int) -> Capture:
        return FakeCapture(opened=index in present)

    assert list_cameras(range(5), capture_factory=factory) == [
        CameraInfo(1, W, H),
        CameraInfo(3, W, H),
    ]
    assert CameraInfo(1, W, H).spec == "camera:1"


def test_list_cameras_with_real_opencv_finds_none_here() -> None:
    assert list_cameras([MISSING_DEVICE]) == []


async def test_a_camera_slow_to_open_gets_the_pattern_meanwhile() -> None:
    unblock = threading.Event()
    statuses: list[CameraStatus] = []
    track = make_track(Script(FakeCapture(block=unblock)), statuses, stall_timeout=0.05)
    frame = await track.recv()
    assert not is_camera_frame(frame)
    assert track.status.state is CameraState.FALLBACK
    assert "slow to start" in track.status.message
    unblock.set()
    while not is_camera_frame(await track.recv()):
        pass
    track.stop()


def test_bgr_to_yuv420p_crops_odd_sizes_and_keeps_brightness() -> None:
    image = np.full((49, 65, 3), 255, np.uint8)
    frame = to_yuv420p(image)
    assert (frame.width, frame.height, frame.format.name) == (64, 48, "yuv420p")
    assert luma(frame).min() >= 235
    scratch = np.zeros((72, 64), np.uint8)
    again = to_yuv420p(image, scratch)
    assert np.array_equal(luma(again), luma(frame))
    assert scratch.min() >= 128, "the conversion went through the scratch buffer"
