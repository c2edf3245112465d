from __future__ import annotations

import itertools

import numpy as np
import pytest

from callapp.media.frames import VIDEO_TIME_BASE, check_size
from callapp.media.testpattern import PatternRenderer, TestPatternTrack

from .conftest import luma


@pytest.mark.parametrize(("width", "height", "fps"), [(640, 480, 30.0), (1280, 720, 60.0)])
async def test_frames_have_size_format_and_pts_on_the_90khz_grid(
    width: int, height: int, fps: float
) -> None:
    track = TestPatternTrack(width, height, fps)
    frames = [await track.recv() for _ in range(6)]
    track.stop()
    for frame in frames:
        assert (frame.width, frame.height, frame.format.name) == (width, height, "yuv420p")
        assert frame.time_base == VIDEO_TIME_BASE
    pts = [f.pts for f in frames]
    assert pts[0] == 0
    # A stall > 0.5 s would make the track skip ahead by whole frames; it
    # never bursts, so every step is a positive multiple of the interval.
    steps = [b - a for a, b in itertools.pairwise(pts)]
    assert all(step > 0 and step % round(90000 / fps) == 0 for step in steps), steps


async def test_non_integer_rate_keeps_exact_grid() -> None:
    # A clock that stands still: the track sleeps (really) one interval per
    # frame and can never be late, so no frame is skipped.
    track = TestPatternTrack(64, 48, fps=29.97, clock=lambda: 50.0)
    frames = [await track.recv() for _ in range(4)]
    track.stop()
    assert [f.pts for f in frames] == [round(n * 90000 / 29.97) for n in range(4)]


async def test_pacing_follows_the_injected_clock() -> None:
    now = [100.0]
    track = TestPatternTrack(64, 48, fps=10.0, clock=lambda: now[0])
    first = await track.recv()
    now[0] += 0.1  # exactly one frame later: no sleep needed
    second = await track.recv()
    now[0] += 5.0  # a long stall: skip ahead, don't burst
    third = await track.recv()
    track.stop()
    assert (first.pts, second.pts) == (0, 9000)
    assert third.pts == 51 * 9000
    assert track.frames_sent == 52


async def test_consecutive_frames_show_motion() -> None:
    track = TestPatternTrack(320, 240, 30.0)
    a, b = luma(await track.recv()), luma(await track.recv())
    track.stop()
    band_top = 240 - 24  # everything above the text band
    assert not np.array_equal(a[:band_top], b[:band_top])


def test_counter_and_clock_are_drawn() -> None:
    renderer = PatternRenderer(320, 240)
    band = slice(240 - 24, 240)
    same_time = [luma(renderer.render(i, 1.0, 1_700_000_000.0))[band] for i in (5, 6)]
    assert not np.array_equal(*same_time), "the frame counter must change the text band"
    same_index = [luma(renderer.render(5, t, 1_700_000_000.0))[band] for t in (1.0, 2.0)]
    assert not np.array_equal(*same_index), "the elapsed clock must change the text band"
    # Same arguments, same picture: nothing else (e.g. uninitialised memory) leaks in.
    again = [luma(renderer.render(5, 1.0, 1_700_000_000.0)) for _ in range(2)]
    assert np.array_equal(*again)


def test_label_is_drawn_at_the_top() -> None:
    plain = luma(PatternRenderer(320, 240).render(0, 0.0, 0.0))
    labelled = luma(PatternRenderer(320, 240, label="No camera").render(0, 0.0, 0.0))
    assert not np.array_equal(plain[:30], labelled[:30])
    assert (labelled[:30] > 200).any(), "white label text"


async def test_stopped_track_raises() -> None:
    from aiortc.mediastreams import MediaStreamError

    track = TestPatternTrack(64, 48)
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


@pytest.mark.parametrize(("width", "height"), [(641, 480), (640, 8), (0, 0)])
def test_bad_sizes_are_rejected(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="even"):
        check_size(width, height)
