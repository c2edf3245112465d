"""Helpers for media tests: plane access and fake sources."""

from __future__ import annotations

import numpy as np
from aiortc import VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from callapp.media.clock import Pacer
from callapp.media.frames import VIDEO_TIME_BASE, black_frame, plane_views


def luma(frame: VideoFrame) -> np.ndarray:
    """A copy of the frame's Y plane (the frame may be reused or mutated later)."""
    return plane_views(frame)[0].copy()


def is_black(frame: VideoFrame) -> bool:
    y, u, v = plane_views(frame)
    return bool((y <= 16).all() and (u == 128).all() and (v == 128).all())


class FlatTrack(VideoStreamTrack):
    """A paced source of flat grey frames (luma ``grey``), pts from 0 at ``fps``.

    ``frames`` limits how many it sends before it ends by itself.
    """

    def __init__(
        self, grey: int, *, fps: float = 100.0, size: tuple[int, int] = (32, 32), frames: int = -1
    ) -> None:
        super().__init__()
        self.grey = grey
        self.size = size
        self.remaining = frames
        self._pacer = Pacer(fps)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live" or self.remaining == 0:
            self.stop()
            raise MediaStreamError
        self.remaining -= 1
        await self._pacer.next()
        frame = black_frame(*self.size)
        plane_views(frame)[0].fill(self.grey)
        frame.pts = self._pacer.pts()
        frame.time_base = VIDEO_TIME_BASE
        return frame


def grey_level(frame: VideoFrame) -> int:
    """The luma of a flat frame; -1 if the frame is not flat."""
    y = plane_views(frame)[0]
    return int(y[0, 0]) if (y == y[0, 0]).all() else -1
