"""Consuming a remote video track: keep the newest frame, tell the UI.

aiortc's remote tracks queue every decoded frame without bound; a
:class:`LatestFrameSink` drains that queue in its own task as fast as frames
come, keeps only the newest, and calls ``on_frame`` for each on the event loop
thread. Views that paint slower than frames arrive should paint
:attr:`LatestFrameSink.latest` on their own schedule rather than every frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

logger = logging.getLogger(__name__)


class LatestFrameSink:
    """Reads ``track`` until it ends, keeping the newest frame.

    ``on_frame(frame)`` runs on the event loop thread for every frame; an
    exception in it is logged and does not stop the sink. ``on_ended(error)``
    runs once when the track ends: ``error`` is None for a normal end
    (MediaStreamError: the remote side or the call stopped it), else whatever
    ``recv()`` raised. Stopping the sink does not stop the track.
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
        self.frames_received = 0
        self.last_frame_at: float | None = None
        """``time.monotonic()`` when the newest frame arrived (to spot a frozen picture)."""
        self.error: BaseException | None = None
        """What ended the sink, if not a normal end of the track."""
        self._task: asyncio.Task[None] | None = None

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
        error: BaseException | None = None
        try:
            while True:
                frame = await self.track.recv()
                if not isinstance(frame, VideoFrame):
                    logger.warning("sink: %s track sent %r, not video", self.track.kind, frame)
                    continue
                self.latest = frame
                self.frames_received += 1
                self.last_frame_at = time.monotonic()
                if self.on_frame is not None:
                    try:
                        self.on_frame(frame)
                    except Exception:
                        logger.exception("sink: on_frame callback failed")
        except MediaStreamError:
            pass  # the track ended: the normal way out
        except Exception as exc:
            logger.exception("sink: reading the %s track failed", self.track.kind)
            error = self.error = exc
        if self.on_ended is not None:
            try:
                self.on_ended(error)
            except Exception:
                logger.exception("sink: on_ended callback failed")
