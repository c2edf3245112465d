"""Playing a media file as a live source: decoded on a thread, looped, paced on the event loop.

What :class:`~callapp.media.file.FileTrack` and
:class:`~callapp.media.audio_sources.AudioFileTrack` have in common. Each
gives one function, ``decode_pass``, which decodes the whole file once into
whatever the track sends (``yuv420p`` video frames, 20 ms blocks of PCM).
:class:`LoopingDecoder` runs it on a thread of its own, seeks back to the
start and runs it again while looping, and hands the items to the event loop
through a queue of at most ``buffer`` items; the thread waits when the queue
is full, since a file, unlike a device, must not lose anything.
:class:`LoopingFileTrack` is the track around it: start, stop, and handing
out items at a steady rate. Timestamps are each track's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Generator
from typing import Generic, Literal, TypeVar

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.container import InputContainer

from callapp.media.clock import Pacer

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: One pass over the file, from wherever the container is positioned to its end.
DecodePass = Callable[[InputContainer], Generator[T, None, None]]


def source_file_path(spec: str, kind: Literal["video", "audio"], spec_help: str) -> str:
    """The file a source ``spec`` that is no other kind of source names (``~`` expanded).

    For the spec parsers of both kinds of source, whose last resort is a
    file: FileNotFoundError (saying which specs there are, ``spec_help``) if
    it does not exist, ValueError if it is a folder.
    """
    article = "an" if kind == "audio" else "a"
    path = os.path.expanduser(spec.strip())
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{kind} source {spec!r} is not a file that exists; expected {spec_help}"
        )
    if os.path.isdir(path):
        raise ValueError(f"{kind} source {spec!r} is a folder, not {article} {kind} file")
    return path


def open_media_file(path: str, kind: Literal["video", "audio"]) -> InputContainer:
    """``path`` opened for reading, checked to hold a ``kind`` stream.

    File tracks call this in their constructors so that a bad path fails
    where it was given: FileNotFoundError if it does not exist, ValueError
    if FFmpeg cannot read it or it has no ``kind`` stream.
    """
    article = "an" if kind == "audio" else "a"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{kind} file not found: {path}")
    try:
        container = av.open(path, mode="r")
    except av.FFmpegError as exc:
        raise ValueError(f"cannot open {path} as {article} {kind} file: {exc}") from exc
    streams = container.streams.video if kind == "video" else container.streams.audio
    if not streams:
        container.close()
        raise ValueError(f"{path} has no {kind} stream")
    return container


class LoopingDecoder(Generic[T]):
    """Runs ``decode_pass`` over ``container`` on a thread, looping, into a bounded queue.

    The decoder owns ``container`` and closes it when it is done. ``what``
    names the items for the error raised when a pass yields none
    (``"{path}: no {what} could be decoded"``). :meth:`start` and
    :meth:`next` belong to the event loop thread; :meth:`stop` may be called
    whether or not the thread was started.
    """

    def __init__(
        self,
        container: InputContainer,
        decode_pass: DecodePass[T],
        *,
        path: str,
        what: str,
        loop: bool = True,
        buffer: int = 4,
        thread_name: str = "file-decoder",
    ) -> None:
        self.path = path
        self.loop = loop
        self.loops = 0
        """How many times playback has wrapped around to the start."""
        self.error: BaseException | None = None
        """What ended decoding early, if anything did."""
        self.thread: threading.Thread | None = None
        self._container = container
        self._decode_pass = decode_pass
        self._what = what
        self._thread_name = thread_name
        self._queue: asyncio.Queue[T | BaseException | None] | None = None
        self._space = threading.Semaphore(buffer)
        self._stopping = threading.Event()
        self._event_loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the decoder thread; idempotent. Call on the event loop thread."""
        if self.thread is not None or self._stopping.is_set():
            return
        self._event_loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()  # bounded by _space: the thread must block, not fail
        self.thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop decoding, join the thread and close the file; idempotent."""
        self._stopping.set()
        self._space.release()  # wake the thread if it waits for room
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.join(timeout=5)
        else:
            self._container.close()
        if self._queue is not None:
            self._queue.put_nowait(None)  # wake a waiting next()

    async def next(self) -> T | None:
        """The next decoded item; None at the end, after an error (see :attr:`error`) or stop."""
        self.start()
        assert self._queue is not None
        item = await self._queue.get()
        if item is None:
            return None
        if isinstance(item, BaseException):
            self.error = item
            return None
        self._space.release()
        return item

    # -- decoder thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            with self._container:
                while self._decode_once() and self.loop:
                    self.loops += 1
                    self._container.seek(0)
            self._send(None)
        except Exception as exc:
            logger.exception("playing %s failed", self.path)
            self._send(exc)

    def _decode_once(self) -> bool:
        """Decode the whole file once; False if stopped before the end."""
        produced = 0
        with contextlib.closing(self._decode_pass(self._container)) as items:
            for item in items:
                self._space.acquire()
                if not self._send(item):
                    return False
                produced += 1
        if produced == 0:
            raise ValueError(f"{self.path}: no {self._what} could be decoded")
        return not self._stopping.is_set()

    def _send(self, item: T | BaseException | None) -> bool:
        """Queue ``item`` for next(); False once stopped or the event loop is gone."""
        if self._stopping.is_set():
            return False
        loop, queue = self._event_loop, self._queue
        assert loop is not None
        assert queue is not None
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed
            return False
        return True


class LoopingFileTrack(MediaStreamTrack, Generic[T]):
    """A track playing a file through a :class:`LoopingDecoder`, ``rate`` items a second.

    A base for file tracks, listed before aiortc's track class when there is
    one (``class FileTrack(LoopingFileTrack[VideoFrame], VideoStreamTrack)``):
    their ``recv()`` takes the next item from :meth:`_next_item` and stamps
    it. The decoder takes ``container`` over; see it for the other arguments.
    """

    def __init__(
        self,
        container: InputContainer,
        decode_pass: DecodePass[T],
        *,
        rate: float,
        path: str,
        what: str,
        loop: bool,
        buffer: int,
        thread_name: str,
    ) -> None:
        super().__init__()
        self.path = path
        self._pacer = Pacer(rate)
        self._decoder = LoopingDecoder(
            container,
            decode_pass,
            path=path,
            what=what,
            loop=loop,
            buffer=buffer,
            thread_name=thread_name,
        )

    @property
    def loop(self) -> bool:
        """Whether playback starts again at the end of the file."""
        return self._decoder.loop

    @loop.setter
    def loop(self, value: bool) -> None:
        self._decoder.loop = value

    @property
    def loops(self) -> int:
        """How many times playback has wrapped around to the start."""
        return self._decoder.loops

    @property
    def error(self) -> BaseException | None:
        """What ended the track early, if anything did (it is logged too)."""
        return self._decoder.error

    def start(self) -> None:
        """Start the decoder thread; idempotent. Call on the event loop thread."""
        if self.readyState == "live":
            self._decoder.start()

    def stop(self) -> None:
        """End the track, join the decoder thread and close the file."""
        super().stop()
        self._decoder.stop()

    async def _next_item(self) -> T:
        """The next decoded item, at its time; MediaStreamError at the end or after an error."""
        if self.readyState != "live":
            raise MediaStreamError
        self.start()
        item = await self._decoder.next()
        if item is None:
            self.stop()
            raise MediaStreamError
        await self._pacer.next()
        if self.readyState != "live":
            raise MediaStreamError
        return item


__all__ = [
    "DecodePass",
    "LoopingDecoder",
    "LoopingFileTrack",
    "open_media_file",
    "source_file_path",
]
