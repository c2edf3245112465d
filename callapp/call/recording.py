"""Write received frames to a video file, off the event loop.

:class:`FrameRecorder` takes ``av.VideoFrame`` objects on the loop thread
(:meth:`FrameRecorder.write` never blocks) and encodes them on its own thread.
The queue is bounded: when the encoder falls behind, new frames are dropped
and counted rather than piling up. The codec follows the file name:
``.webm`` gets VP8, anything else (``.mp4``, ``.mkv``, ...) H.264, or MPEG-4
part 2 where libx264 is missing.
"""

from __future__ import annotations

import logging
import queue
import threading
from fractions import Fraction
from pathlib import Path

import av

logger = logging.getLogger(__name__)

_STOP = object()


def _codec_for(path: Path) -> str:
    if path.suffix.lower() == ".webm":
        return "libvpx"
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


class FrameRecorder:
    """Encode frames into ``path`` at a nominal ``fps``; see the module docstring."""

    def __init__(self, path: str | Path, *, fps: float = 30.0, max_queue: int = 60) -> None:
        self.path = Path(path)
        self.fps = fps
        self.frames_written = 0
        self.frames_dropped = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._started = False

    def write(self, frame: av.VideoFrame) -> None:
        """Queue ``frame`` for encoding (dropped if the encoder is behind)."""
        if self.error is not None:
            return
        if not self._started:
            self._started = True
            self._thread.start()
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.frames_dropped += 1

    def close(self, timeout: float = 10.0) -> None:
        """Finish the file; blocks until the encoder thread has flushed it."""
        if not self._started:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        container: av.container.OutputContainer | None = None
        stream: av.video.stream.VideoStream | None = None
        rate = Fraction(round(self.fps * 1000), 1000)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                assert isinstance(item, av.VideoFrame)
                if container is None:
                    container = av.open(str(self.path), mode="w")
                    added = container.add_stream(_codec_for(self.path), rate=rate)
                    assert isinstance(added, av.video.stream.VideoStream)
                    stream = added
                    stream.width = item.width - item.width % 2
                    stream.height = item.height - item.height % 2
                    stream.pix_fmt = "yuv420p"
                assert stream is not None
                frame = item.reformat(width=stream.width, height=stream.height, format="yuv420p")
                frame.pts = self.frames_written
                frame.time_base = 1 / rate
                for packet in stream.encode(frame):
                    container.mux(packet)
                self.frames_written += 1
            if container is not None and stream is not None:
                for packet in stream.encode(None):
                    container.mux(packet)
        except Exception as exc:  # reported through .error; the call goes on
            logger.exception("recording to %s failed", self.path)
            self.error = exc
        finally:
            if container is not None:
                container.close()
