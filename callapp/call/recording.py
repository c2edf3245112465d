"""Record the frames a session hands out, with :mod:`callapp.media.recorder`.

The media layer's :class:`~callapp.media.recorder.Recorder` pulls from tracks;
a session hands frames to callbacks. :class:`FrameFeed` joins the two: a
track fed by :meth:`FrameFeed.push` (on the loop thread, never blocking; when
the consumer falls behind the oldest frame is dropped). The call engine also
feeds the speaker this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from callapp.call.errors import MediaError
from callapp.media.recorder import Recorder, RecordingError

Frame = av.VideoFrame | av.AudioFrame


class FrameFeed(MediaStreamTrack):
    """A track (``kind`` video or audio) whose frames are pushed in; latest frames win."""

    def __init__(self, max_frames: int = 30, *, kind: str = "video") -> None:
        super().__init__()
        if kind not in ("video", "audio"):
            raise ValueError(f"a feed is video or audio, not {kind!r}")
        self.kind = kind
        self._queue: asyncio.Queue[Frame | None] = asyncio.Queue(max_frames)
        self.dropped = 0

    def push(self, frame: Frame) -> None:
        if self.readyState != "live":
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(frame)

    async def recv(self) -> Frame:
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
    """Received video and audio into one file: the one glue between frames and a Recorder.

    ``.mp4``/``.mkv``: H.264 and AAC; ``.webm``: VP8 and Opus. The file holds
    what arrived, as it arrived; a call without audio gives a video-only file.
    Starts with the first frame written (or :meth:`start`). ``on_error``
    (the window's) is called on the loop thread when encoding fails later.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        audio_frames: int = 50,
        on_error: Callable[[RecordingError], None] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.feed = FrameFeed()
        # 20 ms frames (10 ms blocks of a mix): about a second rides out a slow write.
        self.audio_feed = FrameFeed(audio_frames, kind="audio")
        try:
            self._recorder = Recorder(self.path, on_error=on_error)
        except RecordingError as exc:
            raise MediaError(str(exc)) from exc
        self._recorder.add_track(self.feed)
        self._recorder.add_track(self.audio_feed)
        self._starting: asyncio.Future[None] | None = None

    def _start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._recorder.start())

    async def start(self) -> None:
        """Start now (before any frame); raises :exc:`RecordingError` if it cannot."""
        self._start()
        assert self._starting is not None
        await self._starting

    def write(self, frame: av.VideoFrame) -> None:
        """Record a video ``frame`` (call on the event loop thread)."""
        self._start()
        self.feed.push(frame)

    def write_audio(self, frame: av.AudioFrame) -> None:
        """Record an audio ``frame`` (call on the event loop thread)."""
        self._start()
        self.audio_feed.push(frame)

    @property
    def frames_written(self) -> int:
        return self._recorder.frames_written.get("video", 0)

    @property
    def audio_frames_written(self) -> int:
        return self._recorder.frames_written.get("audio", 0)

    @property
    def failed(self) -> bool:
        return self._recorder.error is not None

    async def finish(self) -> bool:
        """Finish the file; False if nothing was recorded (no file is left then).

        Raises :exc:`RecordingError` if recording failed.
        """
        if self._starting is not None:
            await self._starting
        self.feed.stop()
        self.audio_feed.stop()
        await self._recorder.stop()
        return any(self._recorder.frames_written.values())

    async def close(self) -> None:
        """:meth:`finish`, for the call engine: raises :exc:`MediaError` if recording failed."""
        try:
            await self.finish()
        except RecordingError as exc:
            raise MediaError(str(exc)) from exc
