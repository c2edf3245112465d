"""ScreenTrack and list_screens against a real X server: an Xvfb each test module starts.

The module's Xvfb is 1280x480 with four solid quadrants drawn on its root
window (red, green / blue, white) and two RandR monitors added, the left and
the right half, so there are three screens: the two halves and the output's
own monitor covering both. Drawing and monitors go through libX11/libXrandr
with ctypes (no window, no window manager: the root window keeps what is drawn
on it while ``-noreset`` keeps the server from resetting between clients);
the helpers for both live in tests/xdisplay.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import mss
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from callapp.media import screen as screen_module
from callapp.media.frames import VIDEO_TIME_BASE
from callapp.media.screen import (
    BgraConverter,
    Screen,
    ScreenTrack,
    ScreenUnavailable,
    fit_size,
    list_screens,
)
from callapp.media.sources import open_video_source
from tests.xdisplay import NO_XVFB, XVFB, add_monitors, fill, fill_quadrants, xvfb

WIDTH, HEIGHT = 1280, 480
HALF_W, HALF_H = WIDTH // 2, HEIGHT // 2
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
WHITE, YELLOW = (255, 255, 255), (255, 255, 0)
SIZE: dict[str, Any] = {"width": 64, "height": 48, "fps": 30.0}  # a camera's request

pytestmark = pytest.mark.skipif(XVFB is None, reason=NO_XVFB)


# -- the module's X server ------------------------------------------------------------


def paint_quadrants(display: str) -> None:
    fill_quadrants(display, WIDTH, HEIGHT, (RED, GREEN, BLUE, WHITE))


@pytest.fixture(scope="module")
def xserver() -> Iterator[str]:
    """The module's Xvfb (see the module docstring), as its display name."""
    with xvfb(WIDTH, HEIGHT) as (display, _):
        paint_quadrants(display)
        add_monitors(
            display, {b"left": (0, 0, HALF_W, HEIGHT), b"right": (HALF_W, 0, HALF_W, HEIGHT)}
        )
        yield display


@pytest.fixture
def display(xserver: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``$DISPLAY`` names the module's Xvfb for this test only."""
    monkeypatch.setenv("DISPLAY", xserver)
    return xserver


def screen_number(left: int, width: int) -> int:
    """The number of the test server's screen at ``left`` that is ``width`` wide."""
    (found,) = [s.index for s in list_screens() if (s.left, s.width) == (left, width)]
    return found


def left_half() -> int:
    return screen_number(0, HALF_W)


def right_half() -> int:
    return screen_number(HALF_W, HALF_W)


def whole() -> int:
    return screen_number(0, WIDTH)


# -- frame checks ------------------------------------------------------------------------


def colour_at(frame: VideoFrame, x: int, y: int, radius: int = 3) -> tuple[int, int, int]:
    """The mean RGB of a small patch of ``frame`` around ``(x, y)``."""
    rgb = frame.to_ndarray(format="rgb24")
    patch = rgb[y - radius : y + radius + 1, x - radius : x + radius + 1].reshape(-1, 3)
    r, g, b = (round(float(c)) for c in patch.mean(axis=0))
    return r, g, b


def close_to(actual: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    # yuv420p in limited range rounds, and chroma is shared by 2x2 pixels:
    # a few levels of error per channel, far from any other test colour.
    return all(abs(a - e) <= 12 for a, e in zip(actual, expected, strict=True))


def assert_colour(frame: VideoFrame, x: int, y: int, expected: tuple[int, int, int]) -> None:
    actual = colour_at(frame, x, y)
    assert close_to(actual, expected), f"pixel ({x}, {y}) is {actual}, expected {expected}"


def assert_quadrants(frame: VideoFrame, colours: tuple[tuple[int, int, int], ...]) -> None:
    """``frame`` shows ``colours`` as top-left, top-right, bottom-left, bottom-right quadrants."""
    w, h = frame.width, frame.height
    points = [
        (w // 4, h // 4),
        (3 * w // 4, h // 4),
        (w // 4, 3 * h // 4),
        (3 * w // 4, 3 * h // 4),
    ]
    for (x, y), colour in zip(points, colours, strict=True):
        assert_colour(frame, x, y, colour)


def stamp(frame: VideoFrame) -> int:
    assert frame.pts is not None
    return int(frame.pts)


async def first_frame(track: ScreenTrack) -> VideoFrame:
    try:
        return await asyncio.wait_for(track.recv(), 5)
    finally:
        track.stop()


# -- listing ---------------------------------------------------------------------------------


def test_list_screens_finds_the_two_halves_and_the_whole(display: str) -> None:
    screens = list_screens()
    assert [s.index for s in screens] == [1, 2, 3]
    assert {(s.width, s.height, s.left, s.top) for s in screens} == {
        (HALF_W, HEIGHT, 0, 0),
        (HALF_W, HEIGHT, HALF_W, 0),
        (WIDTH, HEIGHT, 0, 0),
    }
    assert screens[1].spec == "screen:2"
    assert list_screens(display) == screens  # an explicit display name works the same


# -- what is captured ------------------------------------------------------------------------


async def test_a_whole_screen_arrives_as_yuv420p_showing_what_is_on_it(display: str) -> None:
    track = ScreenTrack(whole())
    assert track.frame_size == (WIDTH, HEIGHT)
    frame = await first_frame(track)
    assert (frame.format.name, frame.width, frame.height) == ("yuv420p", WIDTH, HEIGHT)
    assert frame.time_base == VIDEO_TIME_BASE
    assert frame.pts == 0
    assert_quadrants(frame, (RED, GREEN, BLUE, WHITE))


async def test_a_second_screen_is_captured_at_its_own_place(display: str) -> None:
    frame = await first_frame(ScreenTrack(right_half()))
    assert (frame.width, frame.height) == (HALF_W, HEIGHT)
    assert_quadrants(frame, (GREEN, GREEN, WHITE, WHITE))
    frame = await first_frame(ScreenTrack(left_half()))
    assert_quadrants(frame, (RED, RED, BLUE, BLUE))


async def test_a_region_is_relative_to_its_screen(display: str) -> None:
    # 80x80 around the centre of the whole screen: a quarter of each quadrant.
    frame = await first_frame(ScreenTrack(whole(), region=(HALF_W - 40, HALF_H - 40, 80, 80)))
    assert (frame.width, frame.height) == (80, 80)
    assert_quadrants(frame, (RED, GREEN, BLUE, WHITE))
    # The same place as seen from the right half starts 640 pixels further left.
    frame = await first_frame(ScreenTrack(right_half(), region=(0, HALF_H - 40, 40, 80)))
    assert (frame.width, frame.height) == (40, 80)
    assert_colour(frame, 20, 20, GREEN)
    assert_colour(frame, 20, 60, WHITE)


async def test_odd_regions_lose_a_pixel_to_even_sides(display: str) -> None:
    frame = await first_frame(ScreenTrack(left_half(), region=(1, 1, 33, 21)))
    assert (frame.width, frame.height) == (32, 20)
    assert_colour(frame, 16, 10, RED)


async def test_a_large_screen_is_scaled_down_to_fit_max_size(display: str) -> None:
    track = ScreenTrack(whole(), max_size=(640, 480))
    assert track.frame_size == (640, 240)
    frame = await first_frame(track)
    assert (frame.width, frame.height) == (640, 240)
    assert_quadrants(frame, (RED, GREEN, BLUE, WHITE))


@pytest.mark.parametrize(
    "region", [(0, 0, 641, 480), (-1, 0, 100, 100), (600, 400, 41, 81), (0, 0, 15, 100)]
)
def test_a_region_that_does_not_fit_is_a_value_error(
    display: str, region: tuple[int, int, int, int]
) -> None:
    with pytest.raises(ValueError, match="region"):
        ScreenTrack(left_half(), region=region)


async def test_frames_follow_the_screen_live(display: str) -> None:
    region = (100, 100, 32, 32)  # inside the red quadrant of the left half
    track = ScreenTrack(left_half(), region=region, fps=30)
    try:
        assert_colour(await asyncio.wait_for(track.recv(), 5), 16, 16, RED)
        fill(display, {region: YELLOW})
        deadline = time.monotonic() + 3
        while not close_to(colour_at(await asyncio.wait_for(track.recv(), 5), 16, 16), YELLOW):
            assert time.monotonic() < deadline, "the yellow square never showed"
    finally:
        track.stop()
        fill(display, {region: RED})


# -- timing, threads and the hand-off ---------------------------------------------------------


async def test_frames_come_at_about_fps_with_monotonic_90khz_pts(display: str) -> None:
    track = ScreenTrack(left_half())  # default 15 fps
    assert track.fps == 15.0
    pts: list[int] = []
    try:
        began = time.monotonic()
        while time.monotonic() - began < 1.0:
            pts.append(stamp(await asyncio.wait_for(track.recv(), 5)))
        elapsed = time.monotonic() - began
    finally:
        track.stop()
    # A loose lower bound (the machine is shared); the upper one shows pacing,
    # since a capture loop running flat out would make far more.
    assert 0.5 * 15 <= len(pts) <= 15 * elapsed + 3, f"{len(pts)} frames in {elapsed:.2f} s"
    assert all(b > a for a, b in itertools.pairwise(pts))
    # Stamps are capture instants: their span matches the time taken.
    assert abs((pts[-1] - pts[0]) / 90_000 - elapsed) < 0.3


async def test_a_slow_consumer_gets_the_latest_frame_not_a_backlog(display: str) -> None:
    track = ScreenTrack(left_half(), region=(0, 0, 64, 64), fps=20)
    try:
        first = await asyncio.wait_for(track.recv(), 5)
        captured = track.frames_captured
        await asyncio.sleep(0.6)
        assert track.frames_captured - captured >= 3  # it went on capturing meanwhile...
        began = time.monotonic()
        latest = await asyncio.wait_for(track.recv(), 5)
        assert time.monotonic() - began < 0.05  # ...so a frame was waiting,
        assert stamp(latest) - stamp(first) >= 0.4 * 90_000  # and it is a recent one, not the next
    finally:
        track.stop()


async def test_grabs_and_conversion_run_on_the_capture_thread_with_its_own_mss(
    display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made_on: dict[int, threading.Thread] = {}
    grabbed_on: list[tuple[threading.Thread, threading.Thread]] = []
    converted_on: list[threading.Thread] = []
    real_init: Callable[..., None] = mss.MSS.__init__
    real_grab = mss.MSS.grab
    real_convert = BgraConverter.convert

    def init(self: mss.MSS, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        made_on[id(self)] = threading.current_thread()

    def grab(self: mss.MSS, *args: Any) -> Any:
        grabbed_on.append((made_on[id(self)], threading.current_thread()))
        return real_grab(self, *args)

    def convert(self: BgraConverter, shot: Any) -> VideoFrame:
        converted_on.append(threading.current_thread())
        return real_convert(self, shot)

    monkeypatch.setattr(mss.MSS, "__init__", init)
    monkeypatch.setattr(mss.MSS, "grab", grab)
    monkeypatch.setattr(BgraConverter, "convert", convert)
    track = ScreenTrack(left_half(), region=(0, 0, 64, 64), fps=30)
    try:
        for _ in range(3):
            await asyncio.wait_for(track.recv(), 5)
    finally:
        track.stop()
    loop_thread = threading.current_thread()
    assert grabbed_on
    assert converted_on
    assert all(made is grabbing and made is not loop_thread for made, grabbing in grabbed_on)
    assert all(t is grabbed_on[0][1] for t in converted_on)


async def test_stop_ends_the_capture_thread_promptly(display: str) -> None:
    track = ScreenTrack(left_half(), fps=2)  # long waits between grabs: stop must cut them short
    await asyncio.wait_for(track.recv(), 5)
    thread = track._thread
    assert thread is not None
    assert thread.is_alive()
    began = time.monotonic()
    track.stop()
    assert time.monotonic() - began < 0.5
    assert not thread.is_alive()
    assert track.readyState == "ended"
    assert track.error is None
    with pytest.raises(MediaStreamError):
        await track.recv()
    assert not [t for t in threading.enumerate() if t.name.startswith("screen-")]


async def test_stop_wakes_a_waiting_recv(display: str) -> None:
    track = ScreenTrack(left_half(), fps=1)
    await asyncio.wait_for(track.recv(), 5)
    waiting = asyncio.ensure_future(track.recv())  # the next grab is a second away
    await asyncio.sleep(0.05)
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(waiting, 1)


def test_a_track_never_started_stops_cleanly(display: str) -> None:
    track = ScreenTrack()
    track.stop()
    assert track.readyState == "ended"


async def test_a_capture_failure_ends_the_track_with_a_logged_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with xvfb(320, 240) as (name, process):
        track = ScreenTrack(display=name)
        ended = asyncio.Event()
        track.on("ended", ended.set)
        try:
            await asyncio.wait_for(track.recv(), 5)
            with caplog.at_level(logging.ERROR, logger=screen_module.__name__):
                # SIGTERM: the server drops its clients just the same, and
                # removes its socket and lock file (SIGKILL would leave them).
                process.send_signal(signal.SIGTERM)
                process.wait(5)
                with pytest.raises(MediaStreamError):  # noqa: PT012 - see the loop's comment
                    while True:  # a frame grabbed just before the kill may still come
                        await asyncio.wait_for(track.recv(), 5)
        finally:
            track.stop()
    assert ended.is_set()
    assert track.readyState == "ended"
    assert track.error is not None
    assert track.error.startswith("Screen 1 stopped sharing")
    assert track.error == "Screen 1 stopped sharing: the display went away."
    assert any("capture failed" in r.getMessage() and r.exc_info for r in caplog.records)


# -- errors at construction ------------------------------------------------------------


def _unused_display() -> str:
    """A display name no X server answers on."""
    for number in range(990, 1100):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}") and not os.path.exists(
            f"/tmp/.X{number}-lock"
        ):
            return f":{number}"
    raise AssertionError("no unused display number")


def test_no_display_is_said_in_plain_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    message = r"^No screen to share: no display is available\.$"
    with pytest.raises(ScreenUnavailable, match=message):
        ScreenTrack()
    with pytest.raises(ScreenUnavailable, match=message):
        list_screens()
    with pytest.raises(ScreenUnavailable, match=message):
        open_video_source("screen", **SIZE)


def test_a_display_without_a_server_is_said_in_plain_words(monkeypatch: pytest.MonkeyPatch) -> None:
    bogus = _unused_display()
    monkeypatch.setenv("DISPLAY", bogus)
    with pytest.raises(
        ScreenUnavailable, match=r"^No screen to share: no display is available"
    ) as e:
        ScreenTrack()
    assert bogus in str(e.value)
    assert isinstance(e.value, OSError)
    with pytest.raises(ScreenUnavailable, match="no display is available"):
        ScreenTrack(display=bogus)


def test_a_screen_number_out_of_range_is_said_in_plain_words(display: str) -> None:
    with pytest.raises(ScreenUnavailable, match=r"^There is no screen 9; this computer has 3\.$"):
        ScreenTrack(9)
    with pytest.raises(ScreenUnavailable, match=r"^There is no screen 4; this computer has 3\.$"):
        open_video_source("screen:4", **SIZE)
    with pytest.raises(ScreenUnavailable, match="numbered from 1"):
        open_video_source("screen:0", **SIZE)


def test_bad_rates_and_sizes_are_value_errors(display: str) -> None:
    with pytest.raises(ValueError, match="fps"):
        ScreenTrack(fps=0)
    with pytest.raises(ValueError, match="max_size"):
        ScreenTrack(max_size=(8, 8))


# -- specs -------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "monitor"), [("screen", 1), ("screen:2", 2), (" screen:3 ", 3)])
def test_screen_specs(display: str, spec: str, monitor: int) -> None:
    track = open_video_source(spec, **SIZE)
    assert isinstance(track, ScreenTrack)
    # A screen keeps its own size (the spec's width/height are a camera's) and
    # runs at most at 15 fps.
    assert (track.monitor, track.fps, track.max_size) == (monitor, 15.0, (1920, 1080))
    track.stop()


def test_a_lower_rate_than_15_is_kept_for_a_screen(display: str) -> None:
    track = open_video_source("screen", width=64, height=48, fps=5)
    assert isinstance(track, ScreenTrack)
    assert track.fps == 5
    track.stop()


@pytest.mark.parametrize("spec", ["screen:", "screen:x", "screen:-1", "screen:²", "screen:1.5"])
def test_bad_screen_specs_say_what_is_expected(spec: str) -> None:
    with pytest.raises(ValueError, match="'screen:N'"):
        open_video_source(spec, **SIZE)


# -- sizing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "max_size", "expected"),
    [
        ((1920, 1080), (1920, 1080), (1920, 1080)),
        ((1280, 720), (1920, 1080), (1280, 720)),  # never scaled up
        ((2560, 1440), (1920, 1080), (1920, 1080)),
        ((3840, 1080), (1920, 1080), (1920, 540)),
        ((1080, 1920), (1920, 1080), (606, 1080)),  # 607.5 floored to even
        ((1366, 768), (1280, 720), (1280, 718)),  # 719.6: floored, never above max_size
    ],
)
def test_fit_size(
    size: tuple[int, int], max_size: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert fit_size(*size, max_size) == expected


def test_fit_size_refuses_a_sliver() -> None:
    with pytest.raises(ValueError, match="smaller than 16x16"):
        fit_size(4000, 20, (1920, 1080))


def test_the_converter_reuses_its_input_but_never_its_output() -> None:
    converter = BgraConverter((64, 64))
    image = np.zeros((40, 64, 4), np.uint8)
    image[..., 2] = 255  # BGRA: red
    shot = mss.ScreenShot(
        bytearray(image.tobytes()), {"left": 0, "top": 0, "width": 64, "height": 40}
    )
    one, two = converter.convert(shot), converter.convert(shot)
    assert one is not two
    assert (one.format.name, one.width, one.height) == ("yuv420p", 64, 40)
    assert_colour(two, 32, 20, RED)


def test_screen_is_a_plain_record() -> None:
    assert Screen(2, 1920, 1080, 1920, 0).spec == "screen:2"
