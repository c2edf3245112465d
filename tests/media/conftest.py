"""Helpers for media tests: plane access, fake sources, sound devices and tone analysis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from aiortc import MediaStreamTrack, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from callapp.media.clock import Pacer
from callapp.media.frames import VIDEO_TIME_BASE, black_frame, plane_views
from callapp.media.pcm import SAMPLE_RATE
from tests.media.audio_null import alsa_null_config, alsa_without_devices


@pytest.fixture
def null_audio(tmp_path: Path) -> Iterator[Path]:
    """PortAudio sees ALSA's null device as ``NULL_DEVICE`` (and the default) for the test."""
    with alsa_null_config(tmp_path) as path:
        yield path


@pytest.fixture
def no_audio_devices() -> Iterator[None]:
    """PortAudio sees no sound device at all for the test."""
    with alsa_without_devices():
        yield


def dominant_hz(samples: np.ndarray) -> float:
    """The strongest frequency in ``samples`` (48 kHz), to the resolution of their length."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(samples))


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


class FeedTrack(MediaStreamTrack):
    """A source the test drives: ``recv()`` returns what :meth:`push` gave, in order.

    :meth:`end` makes the next ``recv()`` after the pushed frames raise
    (MediaStreamError, or the given error). Counts the ``recv()`` calls
    begun, the ones cancelled while waiting, and says whether one waits now.
    """

    def __init__(self, kind: str = "video") -> None:
        super().__init__()
        self.kind = kind
        self._items: asyncio.Queue[VideoFrame | AudioFrame | BaseException] = asyncio.Queue()
        self.reads = 0
        self.cancelled = 0
        self.waiting = False

    def push(self, *frames: VideoFrame | AudioFrame) -> None:
        for frame in frames:
            self._items.put_nowait(frame)

    def end(self, error: BaseException | None = None) -> None:
        self._items.put_nowait(error if error is not None else MediaStreamError())

    async def recv(self) -> VideoFrame | AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        self.reads += 1
        self.waiting = True
        try:
            item = await self._items.get()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.waiting = False
        if isinstance(item, BaseException):
            raise item
        return item


async def settle(condition: Callable[[], bool] = lambda: False, *, rounds: int = 200) -> None:
    """Let ready tasks run (no wall-clock wait) until ``condition()`` holds or ``rounds`` pass.

    With the default condition it just runs ``rounds`` loop iterations: enough
    for anything that does not wait on a timer to get where it is going.
    """
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)


async def settle_until(condition: Callable[[], bool], *, rounds: int = 1000) -> None:
    """As :func:`settle`, but fail if ``condition()`` never holds."""
    await settle(condition, rounds=rounds)
    assert condition(), "the condition never held"


def flat_frame(grey: int, pts: int | None = None, size: tuple[int, int] = (32, 32)) -> VideoFrame:
    """A flat grey frame (luma ``grey``) stamped ``pts`` in 1/90000 s."""
    frame = black_frame(*size)
    plane_views(frame)[0].fill(grey)
    frame.pts = pts
    frame.time_base = VIDEO_TIME_BASE
    return frame
