"""One source track read once and handed to any number of consumer tracks.

A group call (a mesh of up to four people) sends the same capture on every
leg, and each leg's aiortc sender calls ``recv()`` on a track of its own; two
senders reading one track would each get every other frame. A
:class:`TrackFanout` reads its source in one pump task and gives every
:class:`FanoutTrack` from :meth:`TrackFanout.subscribe` its own bounded queue:

* ``max_queue`` frames at most, the oldest dropped (and counted) beyond that,
  so a slow or not yet connected consumer never holds anyone up or queues
  without bound. Video uses 1 (latest wins: a sender that fell behind should
  send the newest picture); audio a few frames (5 = 100 ms), so a consumer
  that is late by a frame or two loses nothing.
* Frames are shared, never copied. A video consumer gets a
  :func:`~callapp.media.frames.frame_view` of each frame: its own header
  (``pts``, ``time_base``, ``pict_type``) over the same pixel buffers,
  because aiortc's H.264 encoder rescales ``pts`` and sets ``pict_type`` in
  place on its executor thread, which would change what another leg's
  encoder reads at the same moment. Audio consumers get the very same
  ``AudioFrame``: nothing on the way (aiortc's Opus encoder resamples from
  it, the recorder stamps a copy, playback reads it) changes one. Nobody
  may write a frame's pixels or samples, or the header of an audio frame.
* The pump runs only while at least one consumer is subscribed: the last
  :meth:`FanoutTrack.stop` cancels it (a pending ``recv()`` of the source is
  cancelled), so nothing reads the source when nobody consumes; the next
  subscriber starts a new one.
* A source that ends (``MediaStreamError``, or any other error, kept in
  :attr:`TrackFanout.error`) ends every consumer once it has taken what was
  already queued for it; later subscribers get a track that has ended.
  :meth:`TrackFanout.stop` ends every consumer at once. Neither stops the
  source: its owner (the call session) keeps it for the self-view between
  calls and for the next fan-out, and stops it itself.

Unlike aiortc's ``MediaRelay``: bounded queues both ways, private frame
headers, and the pump follows subscriptions rather than the first ``recv()``.
Everything here runs on the event loop thread; one task reads each
:class:`FanoutTrack`.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from callapp.media.frames import frame_view
from callapp.media.reading import read_track

logger = logging.getLogger(__name__)

Frame = VideoFrame | AudioFrame


class FanoutTrack(MediaStreamTrack):
    """One consumer of a :class:`TrackFanout`: a track of the source's kind.

    Made by :meth:`TrackFanout.subscribe`, not directly. :meth:`stop`
    unsubscribes (the source keeps running). Counters for call statistics:
    :attr:`frames` handed out by :meth:`recv`, :attr:`dropped` (oldest
    frames pushed out of a full queue) and, for video, :attr:`size`.
    """

    def __init__(self, fanout: TrackFanout, kind: str, max_queue: int) -> None:
        super().__init__()
        self.kind = kind
        self._fanout: TrackFanout | None = fanout
        self._queue: collections.deque[Frame] = collections.deque(maxlen=max_queue)
        self._arrived = asyncio.Event()
        self._source_ended = False
        self.frames = 0
        """Frames handed out by :meth:`recv`."""
        self.dropped = 0
        """Frames that were pushed out of the full queue unread."""
        self.size: tuple[int, int] | None = None
        """``(width, height)`` of the last video frame handed out; None before (and for audio)."""

    async def recv(self) -> Frame:
        """The oldest frame queued for this consumer, waiting for one if none is.

        Raises MediaStreamError once this track is stopped, or once the
        source has ended and the frames queued before that are taken. Call
        from one task at a time, on the event loop thread.
        """
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._queue:
                frame = self._queue.popleft()
                self.frames += 1
                if isinstance(frame, VideoFrame):
                    self.size = (frame.width, frame.height)
                return frame
            if self._source_ended:
                self.stop()
                raise MediaStreamError
            if self._fanout is not None:
                self._fanout._ensure_pump()  # subscribed where no loop was running
            self._arrived.clear()
            await self._arrived.wait()

    def stop(self) -> None:
        """End this consumer: drop what is queued, unsubscribe. The source and the others go on."""
        if self.readyState == "live":
            super().stop()
        self._queue.clear()
        self._arrived.set()
        fanout, self._fanout = self._fanout, None
        if fanout is not None:
            fanout._unsubscribe(self)

    def _offer(self, frame: Frame) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(frame)
        self._arrived.set()

    def _end(self) -> None:
        """The source ended: recv() hands out what is queued, then ends this track."""
        self._source_ended = True
        self._fanout = None
        self._arrived.set()


class TrackFanout:
    """Reads ``source`` (video or audio) with one pump task for every subscriber; see the module.

    ``max_queue`` bounds each consumer's queue (1 for video, e.g. 5 for
    audio). Construct, subscribe and stop on the event loop thread.
    """

    def __init__(self, source: MediaStreamTrack, *, max_queue: int) -> None:
        if source.kind not in ("video", "audio"):
            raise ValueError(f"can fan out a video or audio track, not a {source.kind!r} one")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self._source = source
        self.kind: str = source.kind
        self.max_queue = max_queue
        self._consumers: list[FanoutTrack] = []
        self._pump: asyncio.Task[None] | None = None
        self._ended = False
        self._stopped = False
        self._warned = False
        self.frames = 0
        """Frames read from the source and handed to the consumers subscribed then."""
        self.error: BaseException | None = None
        """What the source raised if it ended other than normally, else None."""

    @property
    def source(self) -> MediaStreamTrack:
        return self._source

    @property
    def consumers(self) -> int:
        """How many consumers are subscribed (not stopped, source not ended)."""
        return len(self._consumers)

    @property
    def running(self) -> bool:
        """True while the pump task reads the source."""
        return self._pump is not None and not self._pump.done()

    @property
    def ended(self) -> bool:
        """True once the source has ended or :meth:`stop` was called."""
        return self._ended

    def subscribe(self) -> FanoutTrack:
        """A new consumer track that gets every frame read from now on.

        Starts the pump if it is not running (with no running event loop, the
        consumer's first ``recv()`` does). After the source has ended the
        track comes back ended. Raises RuntimeError after :meth:`stop`.
        """
        if self._stopped:
            raise RuntimeError("subscribe() after stop(): make a new TrackFanout")
        track = FanoutTrack(self, self.kind, self.max_queue)
        if self._ended:
            track._end()
        else:
            self._consumers.append(track)
            self._ensure_pump()
        return track

    def stop(self) -> None:
        """End every consumer at once and stop the pump; the source is not stopped. Idempotent."""
        self._stopped = self._ended = True
        self._cancel_pump()
        consumers, self._consumers = self._consumers, []
        for track in consumers:
            track.stop()

    # -- the pump -------------------------------------------------------------------

    def _ensure_pump(self) -> None:
        if self._pump is not None or not self._consumers or self._ended:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # the first recv() comes back here with a loop
        self._pump = loop.create_task(self._run(), name=f"fanout-{self.kind}")

    def _cancel_pump(self) -> None:
        task, self._pump = self._pump, None
        if task is not None:
            task.cancel()

    def _unsubscribe(self, track: FanoutTrack) -> None:
        if track in self._consumers:
            self._consumers.remove(track)
            if not self._consumers:
                self._cancel_pump()

    async def _run(self) -> None:
        what = f"fan-out: reading the {self.kind} source"
        error = await read_track(self._source, self._hand_out, what=what)
        # Only an ended source gets here: stop() and the last unsubscribe cancel.
        if asyncio.current_task() is not self._pump:
            return  # a stale pump (see _hand_out); the current one will see the end too
        self._pump = None
        self._ended = True
        self.error = error
        consumers, self._consumers = self._consumers, []
        for track in consumers:
            track._end()

    def _hand_out(self, frame: object) -> None:
        if asyncio.current_task() is not self._pump:
            # A pump cancelled while the source's recv() swallowed the cancellation
            # (asyncio.wait_for can, on 3.11): end it, or the source has two readers.
            raise asyncio.CancelledError
        if isinstance(frame, VideoFrame):
            for track in self._consumers:
                track._offer(frame_view(frame))
        elif isinstance(frame, AudioFrame):
            for track in self._consumers:
                track._offer(frame)
        else:
            if not self._warned:
                self._warned = True
                logger.warning("fan-out: the %s source sent %r, not a frame", self.kind, frame)
            return
        self.frames += 1


__all__ = ["FanoutTrack", "TrackFanout"]
