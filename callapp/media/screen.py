"""A screen (or a rectangle of one) as a video track: mss capture on a thread.

One thread per :class:`ScreenTrack` opens its own ``mss.MSS`` instance (mss
objects hold an X connection and must stay on the thread that made them),
grabs the screen every ``1 / fps`` seconds, converts the BGRA pixels to
``yuv420p`` with PyAV's swscale (scaling down to fit ``max_size`` in the same
pass) and stamps each frame from ``time.monotonic()`` at the moment the grab
returned. The newest frame waits in a one-frame slot; at most one wake-up
callback is ever queued on the event loop, so a slow consumer loses old
frames, never memory, and the event loop thread never touches pixels.

Screens are numbered the mss way: 1 is the first screen, 2 the second, ...
(mss's monitor 0, all screens together, is not offered). On Linux this needs
an X display (``$DISPLAY``; under Wayland that is XWayland, which shows only
X11 windows). The constructor connects once to check the display and the
screen number, so a missing display or screen is a :class:`ScreenUnavailable`
there and then; a capture that fails later (display gone, screen unplugged)
is logged, kept in :attr:`ScreenTrack.error` and ends the track, so the
consumer gets MediaStreamError.

Measured on the project's 2-core machine against Xvfb, per frame on the
capture thread (grab + convert, no scaling): 1280x720 about 1.9 ms back to
back and 3.5 ms at 15 fps (caches cold between frames), 1920x1080 3.6 and
5.0 ms; a 15 fps share costs the process 4% and 7% of a core. Of that, the
grab is 0.2 and 0.6 ms (MIT-SHM); a real GPU desktop may be slower to read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mss
import numpy as np
import numpy.typing as npt
from aiortc import VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from av.video.reformatter import VideoReformatter
from mss.exception import ScreenShotError
from mss.models import Monitor
from mss.screenshot import ScreenShot

from callapp.media.clock import Pacer, Timeline
from callapp.media.frames import VIDEO_TIME_BASE

logger = logging.getLogger(__name__)

DEFAULT_FPS = 15.0
"""Screen shares change little between frames; 15 fps looks smooth for scrolling
and pointer movement at half the capture and encoding cost of 30."""

DEFAULT_MAX_SIZE = (1920, 1080)
"""Frames larger than this are scaled down (aspect kept): beyond 1080p the
encoder's cost grows faster than what a remote window can show."""

MIN_SIZE = 16
"""The smallest frame side :func:`~callapp.media.frames.check_size` accepts."""

NO_DISPLAY = "No screen to share: no display is available."

Region = tuple[int, int, int, int]
"""``(left, top, width, height)`` in pixels, relative to the screen's top-left corner."""


class ScreenUnavailable(OSError):
    """There is no screen to capture: no display, no X server, or no such screen number.

    ``str(exc)`` is a sentence for people, e.g. "No screen to share: no
    display is available." or "There is no screen 3; this computer has 1.".
    An OSError, like FileNotFoundError for a missing file, so callers that
    catch OSError for unusable sources catch this too.
    """


@dataclass(frozen=True, slots=True)
class Screen:
    """A screen found by :func:`list_screens`: its number and place on the desktop, in pixels."""

    index: int  # 1 = the first screen (mss numbering)
    width: int
    height: int
    left: int  # desktop coordinates of the top-left corner; non-zero for a second screen
    top: int

    @property
    def spec(self) -> str:
        """The source spec that opens this screen (see :mod:`callapp.media.sources`)."""
        return f"screen:{self.index}"


def list_screens(display: str | None = None) -> list[Screen]:
    """The screens of ``display`` (default: ``$DISPLAY`` on Linux), first screen first.

    Blocks while it connects to the display (milliseconds locally): from
    async code call it with ``asyncio.to_thread``. Raises
    :class:`ScreenUnavailable` when there is no display to connect to.
    """
    with _open_mss(display) as sct:
        return _screens(sct.monitors)


class ScreenTrack(VideoStreamTrack):
    """Video of screen ``monitor`` (1 = first), or of ``region`` of it, at ``fps``.

    ``region`` is ``(left, top, width, height)`` relative to the screen's
    top-left corner and must lie within the screen and be at least 16x16.
    Frames are ``yuv420p``, cropped by at most one pixel to even sides and
    scaled down, aspect kept, to fit within ``max_size`` (never up): that is
    :attr:`frame_size`. (On HiDPI macOS mss grabs more pixels than the
    screen has points; frames follow the grab, scaled to fit the same way.)
    Their pts count 90 kHz ticks of one monotonic timeline from the first
    frame, strictly increasing. ``display`` names the X display (default
    ``$DISPLAY``, read here); other platforms ignore it.

    The constructor connects once to check the display, the screen number
    and the region, and raises :class:`ScreenUnavailable` (no display, no
    such screen) or ValueError (bad ``fps``, ``max_size`` or ``region``).
    The capture thread starts on :meth:`start` or the first :meth:`recv`,
    both on the event loop thread; :meth:`stop` ends and joins it within one
    grab. A capture error ends the track: logged, kept in :attr:`error`,
    then MediaStreamError from :meth:`recv`.
    """

    def __init__(
        self,
        monitor: int = 1,
        *,
        region: Region | None = None,
        fps: float = DEFAULT_FPS,
        max_size: tuple[int, int] = DEFAULT_MAX_SIZE,
        display: str | None = None,
    ) -> None:
        super().__init__()
        if max_size[0] < MIN_SIZE or max_size[1] < MIN_SIZE:
            raise ValueError(f"max_size must be at least 16x16, got {max_size[0]}x{max_size[1]}")
        self._pacer = Pacer(fps, max_lag=0.0)  # raises ValueError for a bad fps
        self.fps = fps
        self.max_size = max_size
        self.display = _resolve_display(display)
        with _open_mss(self.display) as sct:
            screens = _screens(sct.monitors)
        self.screen = _pick(screens, monitor)
        self.region = _check_region(self.screen, region)
        self.monitor = monitor
        self.frame_size = fit_size(self.region[2] & ~1, self.region[3] & ~1, max_size)
        """``(width, height)`` of the frames sent (see the class doc for HiDPI macOS)."""

        self._timeline = Timeline()
        # Shared with the capture thread, guarded by _lock.
        self._lock = threading.Lock()
        self._slot: tuple[VideoFrame, float] | None = None
        self._wake_pending = False

        self._loop: asyncio.AbstractEventLoop | None = None
        self._frame_ready = asyncio.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        """Why capture failed and ended the track; None while it works or after a plain stop()."""
        self.frames_captured = 0
        """Frames grabbed and converted by the thread (all of them, sent or dropped)."""
        self.capture_seconds = 0.0
        """Thread time spent grabbing and converting those frames, for cost reports."""

    def start(self) -> None:
        """Start the capture thread; idempotent. Call on the event loop thread."""
        if self._thread is not None or self.readyState != "live":
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"screen-{self.monitor}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """End the track and join the capture thread (it waits for at most one grab)."""
        if self.readyState == "live":
            super().stop()
        self._stopping.set()
        self._frame_ready.set()  # let a waiting recv() see the end
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
            if thread.is_alive():
                logger.warning("screen %s: capture thread still blocked in a grab", self.monitor)

    # -- event loop side -------------------------------------------------------

    async def recv(self) -> VideoFrame:
        """The newest captured frame, waiting for one if none is new since the last call.

        Raises MediaStreamError once the track is stopped or capture failed.
        """
        if self.readyState != "live":
            raise MediaStreamError
        self.start()
        while True:
            # Checked first: a frame left in the slot by stop() is not sent.
            if self.readyState != "live":
                raise MediaStreamError
            self._frame_ready.clear()
            with self._lock:
                item, self._slot = self._slot, None
            if item is not None:
                frame, captured = item
                frame.pts = self._timeline.stamp(captured)
                frame.time_base = VIDEO_TIME_BASE
                return frame
            await self._frame_ready.wait()

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        self._frame_ready.set()

    def _capture_failed(self) -> None:
        # Runs on the loop thread, so the track ends ("ended" event, recv()
        # wakes) where aiortc expects it; the capture thread is already done.
        self.stop()

    # -- capture thread ----------------------------------------------------------

    def _call_soon(self, callback: Callable[..., Any], *args: Any) -> bool:
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed between the check and the call
            return False
        return True

    def _run(self) -> None:
        failure: Exception | None = None
        reason = ""
        try:
            sct = _open_mss(self.display)  # here, not in __init__: mss is not thread-safe
        except Exception as exc:
            failure = exc
            # ScreenUnavailable here means the display went away since __init__.
            reason = "the display went away" if isinstance(exc, ScreenUnavailable) else _plain(exc)
        else:
            try:
                self._capture(sct)
            except Exception as exc:
                failure, reason = exc, _plain(exc)
            finally:
                try:
                    sct.close()
                except Exception:
                    # After a lost connection closing fails too; that is the
                    # real cause, clearer than what the failed grab raised.
                    if failure is not None:
                        reason = "the display went away"
                    logger.debug("screen %s: closing mss failed", self.monitor, exc_info=True)
        if failure is None or self._stopping.is_set():
            return  # a plain stop(), or one that raced a grab: not a failure
        logger.error("screen %s: capture failed: %s", self.monitor, reason, exc_info=failure)
        self.error = f"Screen {self.monitor} stopped sharing: {reason}."
        self._call_soon(self._capture_failed)

    def _capture(self, sct: mss.MSS) -> None:
        """Grab, convert and deliver frames at ``fps`` until stop() or an error."""
        left, top, width, height = self.region
        area: Monitor = {
            "left": self.screen.left + left,
            "top": self.screen.top + top,
            "width": width,
            "height": height,
        }
        converter = BgraConverter(self.max_size)
        while not self._stopping.is_set():
            # Wait for this frame's slot; after a slow grab the pacer skips
            # the missed slots instead of grabbing back to back.
            delay = self._pacer.advance() - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                return
            began = time.monotonic()
            shot = sct.grab(area)
            captured = time.monotonic()
            frame = converter.convert(shot)
            self.capture_seconds += time.monotonic() - began
            self.frames_captured += 1
            if not self._deliver(frame, captured):
                return  # the event loop is gone: nobody will take frames

    def _deliver(self, frame: VideoFrame, captured: float) -> bool:
        with self._lock:
            self._slot = (frame, captured)
            if self._wake_pending:
                return True
            self._wake_pending = True
        return self._call_soon(self._wake)


class BgraConverter:
    """Turns mss screenshots (BGRA) into new ``yuv420p`` frames fitting ``max_size``.

    The BGRA input frame and swscale context are kept and reused while the
    screenshot size stays the same; every output frame is new, since the
    encoder reads it on another thread while the next one is made. Reusing
    the input saves ``VideoFrame.from_ndarray``'s fresh 8 MB buffer per
    1080p frame (measured 12 ms, against 0.2 ms to copy into a kept one).
    Not thread-safe: one converter per capture thread.
    """

    def __init__(self, max_size: tuple[int, int] = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size
        self._reformatter = VideoReformatter()
        self._source: VideoFrame | None = None
        self._pixels: npt.NDArray[np.uint8] | None = None  # a view of _source's plane
        self._out = (0, 0)

    def convert(self, shot: ScreenShot) -> VideoFrame:
        """``shot`` as a new ``yuv420p`` frame: cropped to even sides, scaled to fit."""
        image: npt.NDArray[np.uint8] = np.asarray(shot)  # (height, width, 4), no copy
        height, width = image.shape[0] & ~1, image.shape[1] & ~1
        if self._source is None or (self._source.width, self._source.height) != (width, height):
            self._source = VideoFrame(width=width, height=height, format="bgra")
            plane = self._source.planes[0]
            rows = np.frombuffer(memoryview(plane), dtype=np.uint8)
            rows = rows.reshape(plane.height, plane.line_size)
            self._pixels = rows[:, : width * 4].reshape(height, width, 4)
            self._out = fit_size(width, height, self.max_size)
        assert self._pixels is not None
        np.copyto(self._pixels, image[:height, :width])
        out_width, out_height = self._out
        # AREA averages the pixels a scaled-down output pixel covers: text stays
        # legible where bilinear would alias. It costs the same (measured).
        return self._reformatter.reformat(
            self._source,
            width=out_width,
            height=out_height,
            format="yuv420p",
            interpolation="AREA",
        )


def fit_size(width: int, height: int, max_size: tuple[int, int]) -> tuple[int, int]:
    """``width`` x ``height`` scaled down, aspect kept, to fit ``max_size``; even sides.

    Sizes that fit already are only cropped to even sides, never scaled up.
    Raises ValueError if the result is smaller than 16 on a side.
    """
    scale = min(1.0, max_size[0] / width, max_size[1] / height)
    # Floor, not round: rounding up could exceed max_size by a pixel. The
    # epsilon keeps 1366 * (1280 / 1366) from flooring to 1279.
    size = (int(width * scale + 1e-6) & ~1, int(height * scale + 1e-6) & ~1)
    if min(size) < MIN_SIZE:
        raise ValueError(
            f"a {width}x{height} capture fits {max_size[0]}x{max_size[1]} only as "
            f"{size[0]}x{size[1]}, smaller than 16x16"
        )
    return size


# -- helpers -----------------------------------------------------------------------


def _resolve_display(display: str | None) -> str | None:
    """``display``, or ``$DISPLAY`` now (not on the capture thread later), on Linux."""
    if not sys.platform.startswith("linux"):
        return None
    if display is None:
        display = os.environ.get("DISPLAY", "")
    if not display:
        raise ScreenUnavailable(NO_DISPLAY)
    return display


def _open_mss(display: str | None) -> mss.MSS:
    """A new mss instance on ``display``; errors become :class:`ScreenUnavailable`."""
    display = _resolve_display(display)
    try:
        if display is not None:
            return mss.MSS(display=display)
        # mss warns (and will fail) when given a display on Windows and macOS.
        return mss.MSS()
    except ScreenShotError as exc:
        if str(exc).startswith("Cannot connect to display"):
            raise ScreenUnavailable(
                f"{NO_DISPLAY[:-1]} (cannot connect to display {display!r})."
            ) from exc
        raise ScreenUnavailable(f"No screen to share: {exc}") from exc


def _plain(exc: BaseException) -> str:
    """``exc`` as a clause for a message (its type when it has no text, as mss's asserts)."""
    return f"the capture failed ({exc or type(exc).__name__})"


def _screens(monitors: list[Monitor]) -> list[Screen]:
    """mss's monitors as screens: entry 0 (all screens together) dropped.

    Without RandR mss reports only entry 0, the whole X screen: that is then
    the one screen.
    """
    found = monitors[1:] or monitors[:1]
    return [
        Screen(index, int(m["width"]), int(m["height"]), int(m["left"]), int(m["top"]))
        for index, m in enumerate(found, start=1)
    ]


def _pick(screens: list[Screen], monitor: int) -> Screen:
    if not 1 <= monitor <= len(screens):
        count = len(screens)
        if monitor == 0:
            raise ScreenUnavailable(
                f"There is no screen 0; screens are numbered from 1 and this computer has {count}."
            )
        raise ScreenUnavailable(f"There is no screen {monitor}; this computer has {count}.")
    return screens[monitor - 1]


def _check_region(screen: Screen, region: Region | None) -> Region:
    """``region`` (default: the whole screen) once it is checked to fit on ``screen``."""
    if region is None:
        region = (0, 0, screen.width, screen.height)
    left, top, width, height = region
    if width < MIN_SIZE or height < MIN_SIZE:
        raise ValueError(f"a screen region must be at least 16x16, got {width}x{height}")
    if left < 0 or top < 0 or left + width > screen.width or top + height > screen.height:
        raise ValueError(
            f"the region {width}x{height} at ({left}, {top}) does not fit on "
            f"screen {screen.index} ({screen.width}x{screen.height})"
        )
    return (left, top, width, height)
