"""A camera as a video track: OpenCV capture on a thread, a test pattern when it fails.

One thread per :class:`CameraTrack` opens the device, reads frames (blocking
``VideoCapture.read``), converts each to ``yuv420p`` there and stamps it from
``time.monotonic()`` at the moment ``read`` returned (OpenCV gives no capture
timestamps). The newest frame waits in a one-frame slot; at most one wake-up
callback is ever queued on the event loop, so a slow consumer loses old frames,
never memory.

If the device is missing at start, fails to open, or stops delivering (read
errors, unplugged, or a read that hangs for ``stall_timeout``), the track keeps
running on a test pattern labelled "No camera" and reports a
:class:`CameraStatus`. The thread retries with exponential backoff and the
track switches back as soon as frames flow again. Status callbacks always run
on the event loop thread.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import cv2
import numpy as np
import numpy.typing as npt
from aiortc import VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from callapp.media.clock import Pacer, Timeline, wait_event
from callapp.media.frames import VIDEO_TIME_BASE, check_size
from callapp.media.testpattern import PatternRenderer

logger = logging.getLogger(__name__)

NO_CAMERA_LABEL = "No camera"


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` this module uses; tests inject fakes."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, Any]: ...

    def set(self, prop_id: int, value: float) -> bool: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[[int], Capture]


def open_opencv_capture(device: int) -> Capture:
    """Open camera ``device`` with OpenCV's default backend (may be unopened)."""
    return cast(Capture, cv2.VideoCapture(device))


class CameraState(enum.StrEnum):
    STARTING = "starting"  # thread started, no frame yet
    LIVE = "live"  # camera frames are being sent
    FALLBACK = "fallback"  # camera missing or failing: the test pattern is sent
    STOPPED = "stopped"  # stop() was called


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """What a camera track is doing, in a form a status line can show."""

    state: CameraState
    device: int
    message: str  # a sentence for people, e.g. "No camera found: sending a test pattern instead"


@dataclass(frozen=True, slots=True)
class CameraInfo:
    """A camera found by :func:`list_cameras`."""

    index: int
    width: int
    height: int

    @property
    def spec(self) -> str:
        """The source spec that opens this camera (see :mod:`callapp.media.sources`)."""
        return f"camera:{self.index}"


def list_cameras(
    indices: Iterable[int] = range(4), *, capture_factory: CaptureFactory = open_opencv_capture
) -> list[CameraInfo]:
    """The cameras among ``indices`` that open, with their current frame size.

    Blocks while each device opens (instant when absent, up to a second for a
    real camera): from async code call it with ``asyncio.to_thread``.
    """
    found = []
    for index in indices:
        capture = capture_factory(index)
        try:
            if capture.isOpened():
                width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
                height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
                found.append(CameraInfo(index, width, height))
        finally:
            capture.release()
    return found


class CameraTrack(VideoStreamTrack):
    """Video from camera ``device``, or a labelled test pattern while it is unavailable.

    ``width``, ``height`` and ``fps`` are requested from the camera, which may
    choose otherwise (frames then have the camera's size, cropped to even
    dimensions); the fallback pattern has the size of the last camera frame,
    or the requested size before the first. Frames are
    ``yuv420p`` with 90 kHz pts from one monotonic timeline across camera and
    pattern frames, strictly increasing.

    The capture thread starts on :meth:`start` or the first :meth:`recv`,
    both on the event loop thread. ``on_status`` is called on that thread for
    every change of :attr:`status`. :meth:`stop` joins the thread.
    """

    def __init__(
        self,
        device: int = 0,
        *,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        on_status: Callable[[CameraStatus], None] | None = None,
        capture_factory: CaptureFactory = open_opencv_capture,
        retry_delay: float = 0.5,
        max_retry_delay: float = 5.0,
        stall_timeout: float = 2.0,
        max_read_failures: int = 5,
    ) -> None:
        super().__init__()
        check_size(width, height)
        self.device = device
        self.width = width
        self.height = height
        self.fps = fps
        self.on_status = on_status
        self._capture_factory = capture_factory
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._stall_timeout = stall_timeout
        self._max_read_failures = max_read_failures

        self._status = CameraStatus(CameraState.STARTING, device, f"Opening camera {device}")
        self._timeline = Timeline()
        self._pacer = Pacer(fps)
        self._pattern: PatternRenderer | None = None  # built on first use
        self._pattern_size = (width, height)  # then the camera's own size
        self._pattern_origin: float | None = None

        # Shared with the capture thread, guarded by _lock.
        self._lock = threading.Lock()
        self._slot: tuple[VideoFrame, float] | None = None
        self._wake_pending = False

        self._loop: asyncio.AbstractEventLoop | None = None
        self._frame_ready = asyncio.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_captured = 0
        """Camera frames read by the thread (all of them, sent or dropped)."""

    @property
    def status(self) -> CameraStatus:
        """The latest status; changes are also reported to ``on_status``."""
        return self._status

    def start(self) -> None:
        """Start the capture thread; idempotent. Call on the event loop thread."""
        if self._thread is not None or self.readyState != "live":
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.device}", daemon=True)
        self._thread.start()
        self._report(self._status)

    def stop(self) -> None:
        """End the track and join the capture thread (waits for one ``read``)."""
        if self.readyState == "live":
            super().stop()
        self._stopping.set()
        self._frame_ready.set()  # let a waiting recv() see the end
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(2.0, self._stall_timeout))
            if thread.is_alive():
                logger.warning("camera %s: capture thread still blocked in read()", self.device)
        if self._status.state is not CameraState.STOPPED:
            self._set_status(CameraState.STOPPED, f"Camera {self.device} stopped")

    # -- event loop side -------------------------------------------------------

    async def recv(self) -> VideoFrame:
        """The newest camera frame, or the next pattern frame while in fallback.

        Raises MediaStreamError once the track is stopped.
        """
        if self.readyState != "live":
            raise MediaStreamError
        self.start()
        while True:
            self._frame_ready.clear()
            item = self._take()
            if item is not None:
                image, captured = item
                if self._status.state is not CameraState.LIVE:
                    self._set_status(
                        CameraState.LIVE,
                        f"Camera {self.device} is on ({image.width}x{image.height})",
                    )
                return self._camera_frame(image, captured)
            if self._status.state is CameraState.FALLBACK:
                return await self._pattern_frame()
            if not await wait_event(self._frame_ready, self._stall_timeout):
                if self._status.state is CameraState.STARTING:
                    message = f"Camera {self.device} is slow to start: sending a test pattern"
                else:
                    message = f"Camera {self.device} stopped responding: sending a test pattern"
                self._set_status(CameraState.FALLBACK, message)
            if self.readyState != "live":
                raise MediaStreamError

    async def _pattern_frame(self) -> VideoFrame:
        pattern = self._pattern
        if pattern is None or (pattern.width, pattern.height) != self._pattern_size:
            pattern = self._pattern = PatternRenderer(*self._pattern_size, label=NO_CAMERA_LABEL)
        # Sleep until the next frame slot, but wake early if the camera is back.
        due = self._pacer.advance()
        delay = due - time.monotonic()
        if delay > 0:
            await wait_event(self._frame_ready, delay)
        if self.readyState != "live":
            raise MediaStreamError
        item = self._take()
        if item is not None:
            self._pacer.reset()  # the next fallback starts a fresh frame grid
            self._set_status(CameraState.LIVE, f"Camera {self.device} is back")
            return self._camera_frame(*item)
        now = time.monotonic()
        if self._pattern_origin is None:
            self._pattern_origin = now
        frame = pattern.render(self._pacer.index, now - self._pattern_origin, time.time())
        return self._stamped(frame, now)

    def _camera_frame(self, frame: VideoFrame, captured: float) -> VideoFrame:
        # The pattern takes the camera's actual size, so falling back does not
        # make the encoder restart at another resolution.
        self._pattern_size = (frame.width, frame.height)
        return self._stamped(frame, captured)

    def _stamped(self, frame: VideoFrame, captured: float) -> VideoFrame:
        frame.pts = self._timeline.stamp(captured)
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def _take(self) -> tuple[VideoFrame, float] | None:
        with self._lock:
            item, self._slot = self._slot, None
        return item

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        self._frame_ready.set()

    def _enter_fallback(self, message: str) -> None:
        self._set_status(CameraState.FALLBACK, message)
        self._frame_ready.set()  # a recv() waiting for camera frames switches now

    def _set_status(self, state: CameraState, message: str) -> None:
        status = CameraStatus(state, self.device, message)
        if status == self._status:
            return
        self._status = status
        logger.info("camera %s: %s", self.device, message)
        self._report(status)

    def _report(self, status: CameraStatus) -> None:
        if self.on_status is None:
            return
        try:
            self.on_status(status)
        except Exception:
            logger.exception("camera status callback failed")

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

    def _fail(self, message: str) -> None:
        # Drop a frame still waiting from the failed device first: taken after
        # this status change, it would flip the status back to LIVE.
        with self._lock:
            self._slot = None
        if not self._stopping.is_set():
            self._call_soon(self._enter_fallback, message)

    def _run(self) -> None:
        delay = self._retry_delay
        while not self._stopping.is_set():
            capture: Capture | None = None
            try:
                capture = self._capture_factory(self.device)
                if not capture.isOpened():
                    self._fail("No camera found: sending a test pattern instead")
                else:
                    self._configure(capture)
                    if self._read_until_failure(capture):
                        delay = self._retry_delay  # it worked for a while: retry fast
                    self._fail(
                        f"Camera {self.device} stopped sending video: "
                        "sending a test pattern instead"
                    )
            except Exception as exc:
                logger.exception("camera %s failed", self.device)
                self._fail(f"Camera {self.device} failed ({exc}): sending a test pattern instead")
            finally:
                if capture is not None:
                    try:
                        capture.release()
                    except Exception:
                        logger.exception("camera %s: release failed", self.device)
            if self._stopping.wait(delay):
                break
            delay = min(delay * 2, self._max_retry_delay)

    def _configure(self, capture: Capture) -> None:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        capture.set(cv2.CAP_PROP_FPS, self.fps)
        # Fewer queued driver buffers means less latency (ignored by some backends).
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def _read_until_failure(self, capture: Capture) -> bool:
        """Deliver frames until reads fail or stop(); True if any frame came."""
        delivered = False
        failures = 0
        scratch = np.empty((self.height * 3 // 2, self.width), np.uint8)
        while not self._stopping.is_set():
            ok, image = capture.read()
            captured = time.monotonic()
            if not ok or not _is_bgr(image):
                failures += 1
                if failures >= self._max_read_failures:
                    return delivered
                continue
            failures = 0
            self.frames_captured += 1
            if scratch.shape != (image.shape[0] // 2 * 3, image.shape[1] & ~1):
                # The camera chose another size than asked: size the buffer to it.
                scratch = np.empty((image.shape[0] // 2 * 3, image.shape[1] & ~1), np.uint8)
            if not self._deliver(to_yuv420p(image, scratch), captured):
                return delivered
            delivered = True
        return delivered

    def _deliver(self, frame: VideoFrame, captured: float) -> bool:
        with self._lock:
            self._slot = (frame, captured)
            if self._wake_pending:
                return True
            self._wake_pending = True
        return self._call_soon(self._wake)


def _is_bgr(image: Any) -> bool:
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
        and image.shape[0] >= 2
        and image.shape[1] >= 2
    )


def to_yuv420p(
    image: npt.NDArray[np.uint8], scratch: npt.NDArray[np.uint8] | None = None
) -> VideoFrame:
    """A BGR image (OpenCV's layout) as a new ``yuv420p`` frame, cropped to even size.

    OpenCV's SIMD converter does the colour work (about 1.7 ms for 720p here,
    against 16 ms for PyAV's swscale from ``bgr24``); PyAV only copies planes.
    ``scratch``, an array of shape ``(height * 3 // 2, width)``, is reused for
    the conversion when its shape fits, saving an allocation per frame.
    """
    height, width = image.shape[0] & ~1, image.shape[1] & ~1
    if (height, width) != image.shape[:2]:
        image = image[:height, :width]
    if scratch is not None and scratch.shape == (height * 3 // 2, width):
        i420 = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420, dst=scratch)
    else:
        i420 = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
    return VideoFrame.from_ndarray(cast(npt.NDArray[np.uint8], i420), format="yuv420p")
