"""Recording tracks to a file: pulled on the event loop, encoded on a thread.

aiortc's ``MediaRecorder`` encodes on the event loop (x264 at 720p takes
milliseconds per frame, which the call's own work would wait for), fixes the
video rate at 30, sizes the video stream before it may have seen a frame if
audio arrives first, and ends its tasks silently on any error. This recorder
keeps its shape (``add_track``, ``start``, ``stop``) but:

* one task per track only moves frames into a bounded queue; a single writer
  thread encodes and muxes (so audio and video never touch the container at
  once). When the writer falls behind, frames are dropped and counted, never
  queued without bound;
* each stream is configured from its own first frame, and encoding starts
  once every stream has one (or ``max_pending`` frames are waiting); a video
  stream keeps that first size, later frames of another size are scaled to it;
* pts come from the frames (the RTP clock), shifted so each track starts at
  the moment its first frame arrived, which keeps audio and video in step;
* the frames it is given are never changed, since others hold them too (a
  fan-out's other consumers, the view, aiortc's encoders on their threads):
  video is encoded from a :func:`~callapp.media.frames.frame_view` carrying
  the recorder's own pts (pixels shared, not copied), audio from a stamped
  copy (PyAV has no such view of audio; 20 ms of samples are cheap);
* any error (opening, encoding, writing, or a track failing with something
  other than its normal end) stops the recording, is reported through
  ``on_error`` on the event loop thread, and is raised again by :meth:`stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, cast

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

from callapp.media.frames import frame_view
from callapp.media.pcm import frame_samples

logger = logging.getLogger(__name__)

VIDEO_STREAM_TIME_BASE = Fraction(1, 90_000)
# Muxers such as Matroska keep 1 ms; two video frames closer than that would
# collide there, so video pts are kept at least this far apart (in 1/90000).
_MIN_VIDEO_STEP = 90
# A video track whose pts stray further than this from arrival times (in
# 1/90000 s) is re-anchored; jitter stays well below it.
_MAX_DRIFT = 2 * 90_000
# How many frames may wait for the writer before new ones are dropped.
DEFAULT_QUEUE_FRAMES = 120


class RecordingError(Exception):
    """The recording failed; ``__cause__`` holds the underlying error."""


@dataclass
class _Track:
    track: MediaStreamTrack
    stream: VideoStream | AudioStream
    index: int
    configured: bool = False
    offset: int | None = None  # added to the frame's pts, in the stream time base
    last_pts: int = -1
    samples: int = 0  # audio: samples written so far
    written: int = 0
    dropped: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


_Item = tuple[_Track, VideoFrame | AudioFrame, float]


class Recorder:
    """Records video (and audio) tracks into ``path`` (``.mp4``, ``.mkv``, ``.webm``...).

    The container is created at once, so a bad path or format raises
    RecordingError here. Video is H.264 (VP8 for WebM), audio AAC (Opus for
    WebM/Ogg/Matroska). Add tracks before :meth:`start`; the tracks stay
    running when the recording stops. A recording that got no frame at all
    leaves no file behind.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        on_error: Callable[[RecordingError], None] | None = None,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
        max_pending: int = 60,
        video_options: dict[str, str] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.on_error = on_error
        self.error: RecordingError | None = None
        """Why the recording failed, or None."""
        # FFmpeg opens the file only when the first packet is written; check
        # the folder now so a bad path fails here rather than mid-call.
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise RecordingError(f"cannot record to {self.path}: no writable folder {folder}")
        try:
            self._container: OutputContainer = av.open(self.path, mode="w", format=format)
        except (av.FFmpegError, ValueError, OSError) as exc:
            raise RecordingError(f"cannot record to {self.path}: {exc}") from exc
        self._video_options = video_options
        self._tracks: list[_Track] = []
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=queue_frames)
        self._max_pending = max_pending
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_at = 0.0
        self._stopped = False

    @property
    def frames_written(self) -> dict[str, int]:
        """Frames encoded so far, per track kind (``"video"``, ``"audio"``)."""
        counts: dict[str, int] = {}
        for t in self._tracks:
            counts[t.track.kind] = counts.get(t.track.kind, 0) + t.written
        return counts

    @property
    def frames_dropped(self) -> int:
        """Frames dropped because the writer fell behind."""
        return sum(t.dropped for t in self._tracks)

    def add_track(self, track: MediaStreamTrack) -> None:
        """Record ``track`` (kind ``video`` or ``audio``). Only before :meth:`start`."""
        if self._thread is not None:
            raise RuntimeError("add tracks before start()")
        fmt = self._container.format.name
        stream: VideoStream | AudioStream
        if track.kind == "video":
            codec = "libvpx" if "webm" in fmt else "libx264"
            video = cast(VideoStream, self._container.add_stream(codec, rate=30))
            video.pix_fmt = "yuv420p"
            video.time_base = VIDEO_STREAM_TIME_BASE
            video.codec_context.time_base = VIDEO_STREAM_TIME_BASE
            options: dict[str, object] = {}
            if codec == "libx264":
                options = {"preset": "veryfast", "crf": "23"}
            options.update(self._video_options or {})
            video.options = options
            stream = video
        elif track.kind == "audio":
            opus = any(name in fmt for name in ("webm", "ogg", "matroska"))
            stream = self._container.add_stream("libopus" if opus else "aac")
        else:
            raise ValueError(f"cannot record a {track.kind!r} track")
        self._tracks.append(_Track(track, stream, len(self._tracks)))

    async def start(self) -> None:
        """Start recording the added tracks."""
        if self._thread is not None:
            return
        if not self._tracks:
            raise RuntimeError("add at least one track before start()")
        self._loop = asyncio.get_running_loop()
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._write, name="recorder", daemon=True)
        self._thread.start()
        for t in self._tracks:
            t.task = self._loop.create_task(self._pull(t), name=f"record-{t.track.kind}")

    async def stop(self) -> None:
        """Finish the file and close it; raise RecordingError if recording failed.

        Waits for the writer to encode what is queued (off the event loop).
        """
        if self._stopped:
            if self.error is not None:
                raise self.error
            return
        self._stopped = True
        tasks = [t.task for t in self._tracks if t.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._thread is not None:
            await asyncio.to_thread(self._queue.put, None)
            await asyncio.to_thread(self._thread.join)
        else:
            self._close()
        if self.error is not None:
            raise self.error

    # -- event loop side ------------------------------------------------------------

    async def _pull(self, t: _Track) -> None:
        warned = False
        while self.error is None:
            try:
                frame = await t.track.recv()
            except MediaStreamError:
                return  # the track ended; the others go on
            except Exception as exc:
                self._fail(f"reading the {t.track.kind} track failed", exc)
                return
            if not isinstance(frame, (VideoFrame, AudioFrame)):
                self._fail(f"the {t.track.kind} track sent {type(frame).__name__}", None)
                return
            try:
                self._queue.put_nowait((t, frame, time.monotonic()))
            except queue.Full:
                t.dropped += 1
                if not warned:
                    warned = True
                    logger.warning("recorder: writer is behind; dropping %s frames", t.track.kind)

    def _fail(self, what: str, cause: BaseException | None) -> None:
        """Record the first error and report it (safe from any thread)."""
        if self.error is not None:
            return
        error = RecordingError(f"recording to {self.path}: {what}: {cause}" if cause else what)
        error.__cause__ = cause
        self.error = error
        logger.error("%s", error)
        loop = self._loop
        if self.on_error is not None and loop is not None and not loop.is_closed():
            on_error = self.on_error
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(on_error, error)

    # -- writer thread ----------------------------------------------------------------

    def _write(self) -> None:
        pending: list[_Item] = []
        writing = False
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                if self.error is not None:
                    continue  # drain, so that put() from stop() never blocks
                if writing:
                    self._encode(*item)
                    continue
                t, frame, _ = item
                if not t.configured:
                    self._configure(t, frame)
                pending.append(item)
                if all(x.configured for x in self._tracks) or len(pending) >= self._max_pending:
                    writing = True
                    for waiting in pending:
                        self._encode(*waiting)
                    pending.clear()
            if self.error is None:
                if pending:  # stopped before every track sent a frame
                    for waiting in pending:
                        self._encode(*waiting)
                if any(t.written for t in self._tracks):
                    for t in self._tracks:
                        self._container.mux(t.stream.encode(None))
        except Exception as exc:
            self._fail("encoding failed", exc)
        finally:
            self._close()

    def _configure(self, t: _Track, frame: VideoFrame | AudioFrame) -> None:
        if isinstance(t.stream, VideoStream) and isinstance(frame, VideoFrame):
            t.stream.width = frame.width
            t.stream.height = frame.height
        elif isinstance(t.stream, AudioStream) and isinstance(frame, AudioFrame):
            t.stream.codec_context.sample_rate = frame.sample_rate
            t.stream.codec_context.layout = frame.layout.name
            t.stream.time_base = Fraction(1, frame.sample_rate)
        t.configured = True

    def _encode(self, t: _Track, frame: VideoFrame | AudioFrame, arrived: float) -> None:
        since_start = arrived - self._started_at
        if isinstance(frame, AudioFrame):
            # Audio is stamped by samples written, so the encoder's frame-size
            # FIFO sees a gapless stream; the first frame starts at its arrival.
            if t.offset is None:
                t.offset = max(0, round(since_start * frame.sample_rate))
            # Stamp a copy: the frame is shared (a fan-out, the call's speaker,
            # whose jitter buffer reads its pts while this thread runs).
            frame = _restamped(frame, t.offset + t.samples)
            t.samples += frame.samples
        else:
            tick = VIDEO_STREAM_TIME_BASE
            arrival_pts = max(0, round(since_start / tick))
            if frame.pts is not None and frame.time_base is not None:
                pts = round(frame.pts * frame.time_base / tick)
            else:
                pts = arrival_pts
            # Anchor the track's own clock at its first frame's arrival, and
            # again whenever it jumps away from real time (a sender restarted).
            if t.offset is None or abs(pts + t.offset - arrival_pts) > _MAX_DRIFT:
                t.offset = arrival_pts - pts
            pts = max(pts + t.offset, t.last_pts + _MIN_VIDEO_STEP if t.last_pts >= 0 else 0)
            t.last_pts = pts
            # Our pts on a header of our own: others read the frame's meanwhile.
            frame = frame_view(frame)
            frame.pts = pts
            frame.time_base = tick
        # Two branches, not one `or`: mypy narrows each pair for encode().
        if isinstance(t.stream, VideoStream) and isinstance(frame, VideoFrame):  # noqa: SIM114
            self._container.mux(t.stream.encode(frame))
        elif isinstance(t.stream, AudioStream) and isinstance(frame, AudioFrame):
            self._container.mux(t.stream.encode(frame))
        else:
            raise TypeError(f"a {t.track.kind} track sent {type(frame).__name__}")
        t.written += 1

    def _close(self) -> None:
        written = any(t.written for t in self._tracks)
        try:
            self._container.close()
        except Exception as exc:
            self._fail("closing the file failed", exc)
        if not written and self.error is None:
            # Nothing was recorded: don't leave a file no player can open.
            with contextlib.suppress(OSError):
                os.remove(self.path)


def _restamped(frame: AudioFrame, pts: int) -> AudioFrame:
    """A copy of ``frame`` (samples are cheap: 20 ms) with ``pts`` in 1/sample_rate.

    Packed ``s16`` (what Opus decodes to) is copied once, straight from the
    frame's buffer; other formats go through ``to_ndarray`` (a second copy).
    """
    samples: Any = (
        frame_samples(frame).reshape(1, -1) if frame.format.name == "s16" else frame.to_ndarray()
    )
    copy = AudioFrame.from_ndarray(samples, format=frame.format.name, layout=frame.layout.name)
    copy.sample_rate = frame.sample_rate
    copy.pts = pts
    copy.time_base = Fraction(1, frame.sample_rate)
    return copy
