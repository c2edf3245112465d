"""Reading a remote video track: count it, keep the newest frame, tell the UI.

aiortc's remote tracks queue every decoded frame without bound; a
:class:`LatestFrameSink` drains that queue in its own task as fast as frames
come, keeps only the newest, counts frames and notes when the first and the
last arrived and the longest gap between two (call statistics, freezes), and
calls ``on_frame`` for each on the event loop thread. It is the one reader of a remote video track:
another consumer (a recorder) subscribes to a
:class:`~callapp.media.fanout.TrackFanout` of the track instead of reading
it too. Views that paint slower than frames arrive should paint
:attr:`LatestFrameSink.latest` on their own schedule rather than every frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiortc import MediaStreamTrack
from av import VideoFrame

from callapp.media.reading import read_track

logger = logging.getLogger(__name__)

#: A gap between two decoded frames longer than this counts as a freeze (s):
#: at 30 fps, six frames missing in a row, what a viewer notices as a stall.
FREEZE_GAP = 0.2


class LatestFrameSink:
    """Reads ``track`` until it ends, keeping the newest frame and counting.

    ``on_frame(frame)`` runs on the event loop thread for every frame, after
    the counters include it; an exception in it is logged and does not stop
    the sink. ``on_ended(error)`` runs once when the track ends (not after
    :meth:`stop`): ``error`` is None for a normal end (MediaStreamError: the
    remote side or the call stopped it), else whatever ``recv()`` raised.
    Anything but a ``VideoFrame`` is skipped with a warning. Stopping the
    sink does not stop the track.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        *,
        on_frame: Callable[[VideoFrame], None] | None = None,
        on_ended: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self.track = track
        self.on_frame = on_frame
        self.on_ended = on_ended
        self.latest: VideoFrame | None = None
        """The newest frame received, None before the first."""
        self.frames = 0
        """Frames received."""
        self.size: tuple[int, int] | None = None
        """``(width, height)`` of the newest frame, None before the first."""
        self.first_frame_at: float | None = None
        """``time.monotonic()`` when the first frame arrived (time to first picture)."""
        self.last_frame_at: float | None = None
        """``time.monotonic()`` when the newest frame arrived (to spot a frozen picture)."""
        self.error: BaseException | None = None
        """What ended the sink, if not a normal end of the track."""
        self.longest_gap: float = 0.0
        """Longest time (s) between two frames' arrivals: the longest freeze seen."""
        self.freezes = 0
        """Gaps between two frames longer than :data:`FREEZE_GAP`."""
        self.frozen_seconds = 0.0
        """The length of those gaps, summed."""
        self._still = False
        self._gap_counts = True
        self._task: asyncio.Task[None] | None = None

    def resume(self, before: LatestFrameSink) -> None:
        """Go on counting freezes from where ``before`` (the same call's last sink) stopped.

        A call whose media path is renegotiated gets a new connection and a
        new remote track; the viewer sees one picture, still from the last
        frame of the old track to the first of the new: that gap is a freeze
        like any other. Call before the first frame.
        """
        self.last_frame_at = before.last_frame_at
        self.longest_gap = before.longest_gap
        self.freezes = before.freezes
        self.frozen_seconds = before.frozen_seconds
        self._still = before._still
        self._gap_counts = before._gap_counts

    @property
    def still(self) -> bool:
        """True while the sender says its picture stands still (its camera is off).

        Gaps between frames are then not freezes: a camera that is off sends a
        black frame now and then, and the gap around switching it back on is
        the sender's doing too, so the first gap after ``still`` turns False is
        not counted either.
        """
        return self._still

    @still.setter
    def still(self, value: bool) -> None:
        if value != self._still:
            self._still = value
            self._gap_counts = False

    @property
    def running(self) -> bool:
        """True between :meth:`start` and the end of the track (or :meth:`stop`)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start reading; idempotent. Call on the event loop thread."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"sink-{self.track.kind}"
            )

    async def stop(self) -> None:
        """Stop reading (the track keeps running) and wait for the task to finish."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # Re-raise only if we ourselves are being cancelled.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise

    async def wait_ended(self) -> None:
        """Wait until the track has ended (or the sink was stopped)."""
        if self._task is not None:
            await asyncio.wait([self._task])  # unlike await, neither raises nor cancels it

    async def _run(self) -> None:
        what = f"sink: reading the {self.track.kind} track"
        error = self.error = await read_track(self.track, self._take, what=what)
        if self.on_ended is not None:
            try:
                self.on_ended(error)
            except Exception:
                logger.exception("sink: on_ended callback failed")

    def _take(self, frame: object) -> None:
        if not isinstance(frame, VideoFrame):
            logger.warning("sink: %s track sent %r, not video", self.track.kind, frame)
            return
        now = time.monotonic()
        if self.first_frame_at is None:
            self.first_frame_at = now
        if self.last_frame_at is not None and self._gap_counts and not self._still:
            # Freezes are counted by arrival: decoded frames are what a viewer sees
            # (a recording's restamped timestamps would hide them).
            gap = now - self.last_frame_at
            self.longest_gap = max(self.longest_gap, gap)
            if gap > FREEZE_GAP:
                self.freezes += 1
                self.frozen_seconds += gap
        self._gap_counts = not self._still
        self.last_frame_at = now
        self.latest = frame
        self.frames += 1
        self.size = (frame.width, frame.height)
        if self.on_frame is not None:
            try:
                self.on_frame(frame)
            except Exception:
                logger.exception("sink: on_frame callback failed")
