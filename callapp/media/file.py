"""A video file as a live track: decoded on a thread, looped, paced at its frame rate.

A :class:`~callapp.media.decoding.LoopingDecoder` reads the file with PyAV on
a thread, at most ``buffer_frames`` frames ahead, and seeks back to the start
at its end; this module only converts frames to ``yuv420p`` if they are not
already. ``recv()`` paces frames at the stream's frame rate from a monotonic
clock and stamps them ``round(n * 90000 / fps)``, continuing across loops, so
pts never go back. Audio in the file is ignored.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from fractions import Fraction

from aiortc import VideoStreamTrack
from av import VideoFrame
from av.container import InputContainer
from av.video.stream import VideoStream

from callapp.media.decoding import LoopingFileTrack, open_media_file
from callapp.media.frames import VIDEO_TIME_BASE

DEFAULT_FPS = 30.0


class FileTrack(LoopingFileTrack[VideoFrame], VideoStreamTrack):
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
        path = os.fspath(path)
        container = open_media_file(path, "video")
        self._stream: VideoStream = container.streams.video[0]
        self.width: int = self._stream.codec_context.width
        self.height: int = self._stream.codec_context.height
        self.fps = fps or _frame_rate(self._stream)
        super().__init__(
            container,
            self._decode_pass,
            rate=self.fps,
            path=path,
            what="video frame",
            loop=loop,
            buffer=buffer_frames,
            thread_name="file-decoder",
        )

    async def recv(self) -> VideoFrame:
        """The next frame of the file at its time. Raises MediaStreamError at the end."""
        frame = await self._next_item()
        frame.pts = self._pacer.pts()
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def _decode_pass(self, container: InputContainer) -> Generator[VideoFrame, None, None]:
        """The video stream once through, as ``yuv420p`` (on the decoder thread)."""
        for frame in container.decode(self._stream):
            yield frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")


def _frame_rate(stream: VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if isinstance(rate, Fraction) and rate > 0:
            return float(rate)
    return DEFAULT_FPS
