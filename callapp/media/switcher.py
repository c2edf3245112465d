"""The one local video track a call sends: sources swap under it, no renegotiation.

A :class:`SwitchableVideoTrack` is added to the peer connection once. Behind
it, a pump task pulls frames from the current source as they come and keeps
only the newest; ``recv()`` hands that one out. So the source can be replaced
at any moment (camera to test pattern, one camera to another, a file), the
local preview keeps running before a call starts and while video is disabled,
and a consumer slower than the source loses frames instead of queueing them.

Output pts are 90 kHz on one monotonic timeline owned by the switcher: each
source's own pts are kept relative to each other (a camera's capture stamps
stay exact) but shifted onto that timeline when the source starts, and a
stamp never repeats or goes back, across switches, enabling and disabling.

Disabled, or with no source, the track sends black frames at ``idle_fps``:
cheap to make and to encode, and the receiver keeps a live, black picture.
Each black frame is a fresh :func:`~callapp.media.frames.black_frame` (about
50 us at 640x480, at most ``idle_fps`` a second), so no frame an encoder
thread may still hold is ever stamped again.

In a call this is the session's one video source, added to no peer
connection itself: a :class:`~callapp.media.fanout.TrackFanout` is its one
consumer and hands its frames to every leg. Its own pump keeps the preview
running whether or not anything consumes (:meth:`SwitchableVideoTrack.start`
before and between calls).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiortc import MediaStreamTrack, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from callapp.media.clock import Pacer, wait_event
from callapp.media.frames import (
    VIDEO_CLOCK_RATE,
    VIDEO_TIME_BASE,
    black_frame,
    check_size,
    frame_view,
)
from callapp.media.reading import read_track

logger = logging.getLogger(__name__)

# A source whose pts drift this far (in 90 kHz ticks) from the switcher's clock
# (it looped, skipped, or was paused) is re-anchored to the present.
_MAX_DRIFT = VIDEO_CLOCK_RATE


class SwitchableVideoTrack(VideoStreamTrack):
    """A video track whose source can be replaced or muted at runtime.

    ``width`` and ``height`` size the black frames until a source has
    delivered a frame (then black frames take the last source frame's size, so
    disabling does not change the encoded resolution).

    Callbacks run on the event loop thread: ``on_preview(frame)`` for every
    source frame (``None`` when there is no longer a local picture), and
    ``on_source_ended(track)`` when a source ends by itself or fails (its
    ``recv()`` raised); the switcher then sends black until :meth:`set_source`
    is called.

    The switcher owns its sources: they are stopped when replaced (unless
    ``stop_previous=False``) and when the switcher stops, and each frame a
    source returns is the switcher's to stamp (sources make a fresh frame per
    ``recv()``). Once shown to ``on_preview`` a frame is not changed again: if
    its stamp must move when it is sent, a
    :func:`~callapp.media.frames.frame_view` carries the new one.
    """

    def __init__(
        self,
        source: MediaStreamTrack | None = None,
        *,
        width: int = 640,
        height: int = 480,
        idle_fps: float = 5.0,
        on_preview: Callable[[VideoFrame | None], None] | None = None,
        on_source_ended: Callable[[MediaStreamTrack], None] | None = None,
    ) -> None:
        super().__init__()
        check_size(width, height)
        self.on_preview = on_preview
        self.on_source_ended = on_source_ended
        self._size = (width, height)
        self._source = source
        self._enabled = True
        self._pump_task: asyncio.Task[None] | None = None
        self._started = False

        self._origin = time.monotonic()
        self._last_pts = -1
        self._offset: int | None = None  # source pts -> our pts, per source

        self._fresh: VideoFrame | None = None  # newest source frame not yet sent
        self._preview: VideoFrame | None = None
        self._frame_event = asyncio.Event()  # a fresh frame, or any change below
        self._state_event = asyncio.Event()  # source, enabled or ended changed
        self._idle_pacer = Pacer(idle_fps)
        self.frames_sent = 0
        """Frames handed out by recv(), black ones included."""

    # -- control ------------------------------------------------------------------

    @property
    def source(self) -> MediaStreamTrack | None:
        """The current source, or None (black frames)."""
        return self._source

    def set_source(
        self, source: MediaStreamTrack | None, *, stop_previous: bool = True
    ) -> MediaStreamTrack | None:
        """Send from ``source`` from the next frame on; return the previous source.

        The previous source is stopped unless ``stop_previous`` is False.
        Call on the event loop thread.
        """
        previous, self._source = self._source, source
        if previous is source:
            return previous
        self._cancel_pump()
        self._offset = None
        self._fresh = None
        if previous is not None and stop_previous:
            previous.stop()
        if source is None:
            self._set_preview(None)
        elif self._started:
            self._start_pump()
        self._changed()
        return previous

    @property
    def enabled(self) -> bool:
        """False: send black frames (the source keeps running for the preview)."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if value != self._enabled:
            self._enabled = value
            self._fresh = None  # resume with a frame newer than the switch
            self._changed()

    @property
    def preview(self) -> VideoFrame | None:
        """The newest local source frame, for the self-view; None without a source."""
        return self._preview

    def start(self) -> None:
        """Start pulling the source (for the preview) before anyone calls recv().

        Idempotent; call on the event loop thread.
        """
        if not self._started and self.readyState == "live":
            self._started = True
            self._start_pump()

    def stop(self) -> None:
        """End this track and stop the current source."""
        if self.readyState == "live":
            super().stop()
        self._cancel_pump()
        source, self._source = self._source, None
        if source is not None:
            source.stop()
        self._changed()

    # -- sending --------------------------------------------------------------------

    async def recv(self) -> VideoFrame:
        """The newest source frame not sent yet, or a paced black frame.

        Raises MediaStreamError once stopped.
        """
        self.start()
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            # A fresh frame is sent even if its source has just ended.
            if self._enabled and (self._source is not None or self._fresh is not None):
                frame = self._fresh
                if frame is not None:
                    self._fresh = None
                    return self._send(frame)
                self._frame_event.clear()
                await self._frame_event.wait()
                continue
            due = self._idle_pacer.advance()
            delay = due - time.monotonic()
            if delay > 0:
                self._state_event.clear()
                if await wait_event(self._state_event, delay):
                    self._idle_pacer.reset()  # idle again later: start a fresh grid
                    continue
            black = black_frame(*self._size)
            black.pts = max(self._now_pts(), self._last_pts + 1)
            black.time_base = VIDEO_TIME_BASE
            return self._send(black)

    def _send(self, frame: VideoFrame) -> VideoFrame:
        """Hand ``frame`` out with a pts above every one before (its own, if it is)."""
        # Clamp: a stale source stamp must not go behind a black frame sent since.
        pts = max(frame.pts if frame.pts is not None else self._now_pts(), self._last_pts + 1)
        if pts != frame.pts:
            frame = frame_view(frame)  # the preview may hold this frame: restamp a view
            frame.pts = pts
        self._last_pts = pts
        self.frames_sent += 1
        return frame

    def _now_pts(self) -> int:
        return round((time.monotonic() - self._origin) * VIDEO_CLOCK_RATE)

    def _changed(self) -> None:
        self._state_event.set()
        self._frame_event.set()

    # -- the pump -----------------------------------------------------------------

    def _start_pump(self) -> None:
        if self._source is not None and self._pump_task is None:
            self._pump_task = asyncio.get_running_loop().create_task(
                self._pump(self._source), name="switcher-pump"
            )

    def _cancel_pump(self) -> None:
        task, self._pump_task = self._pump_task, None
        if task is not None:
            task.cancel()

    async def _pump(self, source: MediaStreamTrack) -> None:
        error = await read_track(source, self._take, what=f"switcher: source {source}")
        if error is not None:
            source.stop()  # broken: it must not be read again, nor leave recv() waiting
        if source is self._source:
            self._source_ended(source)

    def _take(self, frame: object) -> None:
        """A frame from the current source: stamp it, keep it as the newest, preview it."""
        if not isinstance(frame, VideoFrame):
            logger.warning("switcher: source %s sent %r, not video", self._source, type(frame))
            return
        # Before anyone else sees the frame, so stamping it in place is safe.
        frame.pts = self._map_pts(frame)
        frame.time_base = VIDEO_TIME_BASE
        self._size = (frame.width, frame.height)
        self._fresh = frame
        self._frame_event.set()
        self._set_preview(frame)

    def _map_pts(self, frame: VideoFrame) -> int:
        now = self._now_pts()
        if frame.pts is None or frame.time_base is None:
            return now
        source_pts = round(frame.pts * frame.time_base * VIDEO_CLOCK_RATE)
        if self._offset is None or abs(source_pts + self._offset - now) > _MAX_DRIFT:
            self._offset = now - source_pts
        return source_pts + self._offset

    def _source_ended(self, source: MediaStreamTrack) -> None:
        logger.info("switcher: source %s ended; sending black", source)
        self._pump_task = None
        self._source = None
        self._set_preview(None)
        self._changed()
        if self.on_source_ended is not None:
            try:
                self.on_source_ended(source)
            except Exception:
                logger.exception("switcher: on_source_ended callback failed")

    def _set_preview(self, frame: VideoFrame | None) -> None:
        if frame is None and self._preview is None:
            return
        self._preview = frame
        if self.on_preview is not None:
            try:
                self.on_preview(frame)
            except Exception:
                logger.exception("switcher: preview callback failed")
