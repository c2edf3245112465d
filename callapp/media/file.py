"""A video file as a live track: decoded on a thread, looped, paced at its frame rate.

A decoder thread reads the file with PyAV, converts frames to ``yuv420p`` if
they are not already, and hands them to the event loop through a queue of at
most ``buffer_frames`` frames (the thread waits when it is full: a file, unlike
a camera, must not lose frames). At the end of the file it seeks back to the
start. ``recv()`` paces frames at the stream's frame rate from a monotonic
clock and stamps them ``round(n * 90000 / fps)``, continuing across loops, so
pts never go back. Audio in the file is ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from fractions import Fraction

import av
from aiortc import VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from av.container import InputContainer
from av.video.stream import VideoStream

from callapp.media.clock import Pacer
from callapp.media.frames import VIDEO_TIME_BASE

logger = logging.getLogger(__name__)

DEFAULT_FPS = 30.0


class FileTrack(VideoStreamTrack):
    """Plays the first video stream of ``path`` as a live track.

    The file is opened and probed in the constructor, so a missing file raises
    FileNotFoundError and a file without video raises ValueError there and
    then. ``loop=False`` ends the track (MediaStreamError) after the last
    frame. ``fps`` overrides the rate read from the file. A decoding error
    ends the track too; it is logged and kept in :attr:`error`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        loop: bool = True,
        fps: float | None = None,
        buffer_frames: int = 4,
    ) -> None:
        super().__init__()
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"video file not found: {self.path}")
        try:
            container = av.open(self.path, mode="r")
        except av.FFmpegError as exc:
            raise ValueError(f"cannot open {self.path} as a video file: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise ValueError(f"{self.path} has no video stream")
        self._container: InputContainer = container
        self._stream: VideoStream = container.streams.video[0]
        self.width: int = self._stream.codec_context.width
        self.height: int = self._stream.codec_context.height
        self.fps = fps or _frame_rate(self._stream)
        self.loop = loop
        self.error: BaseException | None = None
        """What ended the track early, if anything did."""
        self.loops = 0
        """How many times playback has wrapped around to the start."""

        self._pacer = Pacer(self.fps)
        self._queue: asyncio.Queue[VideoFrame | BaseException | None] | None = None
        self._space = threading.Semaphore(buffer_frames)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the decoder thread; idempotent. Call on the event loop thread."""
        if self._thread is not None or self.readyState != "live":
            return
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()  # bounded by _space, not by maxsize
        self._thread = threading.Thread(target=self._run, name="file-decoder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the track, join the decoder thread and close the file."""
        super().stop()
        self._stopping.set()
        self._space.release()  # wake the thread if it waits for room
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        else:
            self._container.close()
        if self._queue is not None:
            self._queue.put_nowait(None)  # wake a waiting recv()

    async def recv(self) -> VideoFrame:
        """The next frame of the file at its time. Raises MediaStreamError at the end."""
        if self.readyState != "live":
            raise MediaStreamError
        self.start()
        assert self._queue is not None
        item = await self._queue.get()
        if isinstance(item, VideoFrame):
            self._space.release()
            await self._pacer.next()
            if self.readyState != "live":
                raise MediaStreamError
            item.pts = self._pacer.pts()
            item.time_base = VIDEO_TIME_BASE
            return item
        if isinstance(item, BaseException):
            self.error = item
        self.stop()
        raise MediaStreamError

    # -- decoder thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            with self._container:
                while self._decode_once() and self.loop:
                    self.loops += 1
                    self._container.seek(0)
            self._put(None)
        except Exception as exc:
            logger.exception("playing %s failed", self.path)
            self._put(exc)

    def _decode_once(self) -> bool:
        """Decode the whole stream once; False if stopped before the end."""
        produced = 0
        for frame in self._container.decode(self._stream):
            if frame.format.name != "yuv420p":
                frame = frame.reformat(format="yuv420p")
            if not self._put(frame):
                return False
            produced += 1
        if produced == 0:
            raise ValueError(f"{self.path}: no video frame could be decoded")
        return not self._stopping.is_set()

    def _put(self, item: VideoFrame | BaseException | None) -> bool:
        """Queue ``item`` for recv(), waiting for room; False once stopped."""
        if isinstance(item, VideoFrame):
            self._space.acquire()
        if self._stopping.is_set():
            return False
        loop, queue = self._loop, self._queue
        assert loop is not None
        assert queue is not None
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed
            return False
        return True


def _frame_rate(stream: VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if isinstance(rate, Fraction) and rate > 0:
            return float(rate)
    return DEFAULT_FPS
