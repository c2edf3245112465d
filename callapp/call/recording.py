"""Record the frames a session hands out, with :mod:`callapp.media.recorder`.

The media layer's :class:`~callapp.media.recorder.Recorder` pulls from tracks;
a session hands frames to callbacks. :class:`FrameFeed` joins the two: a
video track fed by :meth:`FrameFeed.push` (on the loop thread, never
blocking; when the recorder falls behind the oldest frame is dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from callapp.call.errors import MediaError
from callapp.media.recorder import Recorder, RecordingError


class FrameFeed(MediaStreamTrack):
    """A video track whose frames are pushed in; latest frames win."""

    kind = "video"

    def __init__(self, max_frames: int = 30) -> None:
        super().__init__()
        self._queue: asyncio.Queue[av.VideoFrame | None] = asyncio.Queue(max_frames)
        self.dropped = 0

    def push(self, frame: av.VideoFrame) -> None:
        if self.readyState != "live":
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(frame)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        if self.readyState == "live":
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
        super().stop()


class CallRecording:
    """Received video into a file (``.mp4``/``.mkv``: H.264, ``.webm``: VP8)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.feed = FrameFeed()
        try:
            self._recorder = Recorder(self.path)
        except RecordingError as exc:
            raise MediaError(str(exc)) from exc
        self._recorder.add_track(self.feed)
        self._starting: asyncio.Future[None] | None = None

    def write(self, frame: av.VideoFrame) -> None:
        """Record ``frame`` (call on the event loop thread)."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._recorder.start())
        self.feed.push(frame)

    @property
    def frames_written(self) -> int:
        return self._recorder.frames_written.get("video", 0)

    async def close(self) -> None:
        """Finish the file; raises :exc:`MediaError` if recording failed."""
        if self._starting is not None:
            await self._starting
        self.feed.stop()
        try:
            await self._recorder.stop()
        except RecordingError as exc:
            raise MediaError(str(exc)) from exc
