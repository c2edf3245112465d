"""Open the local video source a :class:`CallConfig` names.

``test`` is a generated pattern, ``camera`` / ``camera:N`` a camera (which
falls back to a labelled pattern while it is unavailable), anything else a
video file path. The tracks themselves live in :mod:`callapp.media`; this
module only maps the spec to one, so the call engine never touches devices.
"""

from __future__ import annotations

import fractions
import importlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError

from callapp.call.config import CallConfig
from callapp.call.errors import MediaError

logger = logging.getLogger(__name__)


def _media(module: str, name: str) -> Any:
    """``callapp.media.<module>.<name>``, or None if that part is not there."""
    try:
        return getattr(importlib.import_module(f"callapp.media.{module}"), name, None)
    except ImportError:
        return None


def parse_spec(spec: str) -> tuple[str, int | str | None]:
    """``("test", None)``, ``("camera", index)`` or ``("file", path)``."""
    if spec == "test":
        return "test", None
    if spec == "camera":
        return "camera", 0
    if spec.startswith("camera:"):
        index = spec.partition(":")[2]
        if not index.isdigit():
            raise MediaError(f"camera index must be a number, not {index!r}")
        return "camera", int(index)
    return "file", spec


def open_source(
    config: CallConfig, on_notice: Callable[[str | None], None] = lambda notice: None
) -> MediaStreamTrack:
    """A live video track for ``config.video``; raises :exc:`MediaError`."""
    kind, arg = parse_spec(config.video)
    size = (config.width, config.height)
    if kind == "camera":
        camera = _media("camera", "CameraTrack")
        if camera is not None:

            def status(status: Any) -> None:
                state = str(getattr(status, "state", ""))
                message = getattr(status, "message", None)
                on_notice(None if state in ("running", "live", "ok") else message)

            track: MediaStreamTrack = camera(
                arg, width=size[0], height=size[1], fps=config.fps, on_status=status
            )
            return track
        on_notice("No camera support: sending a test pattern instead.")
        return _pattern(config, label="No camera")
    if kind == "file":
        path = Path(str(arg))
        if not path.is_file():
            raise MediaError(f"no such video file: {path}")
        file_track = _media("file", "FileTrack")
        if file_track is not None:
            try:
                opened: MediaStreamTrack = file_track(str(path), loop=True)
            except (OSError, ValueError, av.FFmpegError) as exc:
                raise MediaError(f"cannot play {path}: {exc}") from exc
            return opened
        return _PlayerTrack(str(path))
    return _pattern(config)


def _pattern(config: CallConfig, label: str | None = None) -> MediaStreamTrack:
    pattern = _media("testpattern", "TestPatternTrack")
    if pattern is not None:
        return pattern(config.width, config.height, config.fps, label=label)  # type: ignore[no-any-return]
    return FlatPatternTrack(config.width, config.height, config.fps)


class FlatPatternTrack(VideoStreamTrack):
    """A minimal moving pattern, used only when :mod:`callapp.media` has none."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        super().__init__()
        self._size = (width - width % 2, height - height % 2)
        self._interval = 1.0 / fps
        self._origin: float | None = None
        self._index = 0

    async def recv(self) -> av.VideoFrame:
        import asyncio

        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._origin is None:
            self._origin = now
        due = self._origin + self._index * self._interval
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 0.5:  # stalled: skip ahead rather than burst
            self._index = int((now - self._origin) / self._interval)
        width, height = self._size
        data = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
        data[:height, :] = 16 + (self._index * 3) % 200
        x = (self._index * 7) % max(1, width - 32)
        data[: min(32, height), x : x + 32] = 235
        frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
        frame.pts = round(self._index * 90000 * self._interval)
        frame.time_base = fractions.Fraction(1, 90000)
        self._index += 1
        return frame


class _PlayerTrack(MediaStreamTrack):
    """A video file through aiortc's MediaPlayer, until media/ offers a file track."""

    kind = "video"

    def __init__(self, path: str) -> None:
        super().__init__()
        from aiortc.contrib.media import MediaPlayer

        try:
            self._player = MediaPlayer(path, loop=True)
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot play {path}: {exc}") from exc
        video = self._player.video
        if video is None:
            raise MediaError(f"{path} has no video")
        self._video: MediaStreamTrack = video

    async def recv(self) -> av.VideoFrame:
        frame = await self._video.recv()
        if not isinstance(frame, av.VideoFrame):
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        super().stop()
        self._video.stop()
